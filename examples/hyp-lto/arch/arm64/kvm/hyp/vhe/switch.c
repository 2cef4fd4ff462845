/*
 * The C side of the VHE world switch: run a guest until it has nothing more to do, and panic
 * when the hypervisor's own state is broken. hyp_panic() is defined last, so it is the last
 * function of this object, the last object of vmlinux.o.
 */
#include <linux/types.h>
#include <asm/kvm_hyp.h>

_Static_assert(__builtin_offsetof(struct kvm_cpu_context, panic_lr) == CTXT_PANIC_LR, "CTXT_PANIC_LR");
_Static_assert(__builtin_offsetof(struct kvm_cpu_context, regs) == CTXT_REGS, "CTXT_REGS");
_Static_assert(__builtin_offsetof(struct kvm_cpu_context, fp_regs) == CTXT_FP_REGS, "CTXT_FP_REGS");
_Static_assert(sizeof(struct kvm_cpu_context) == CTXT_SIZE, "CTXT_SIZE");
_Static_assert(__builtin_offsetof(struct kvm_hyp_context, exits) == HYP_CTXT_EXITS, "HYP_CTXT_EXITS");

struct kvm_hyp_context kvm_hyp_ctxt;
u64 kvm_hyp_flags = 1ULL << KVM_HYP_FLAG_GUEST_FP;

/* Exits the hypervisor handles itself; the guest is re-entered straight away. */
static bool fixup_guest_exit(struct kvm_cpu_context *guest, u64 *exit_code)
{
	if (*exit_code != ARM_EXCEPTION_TRAP)
		return false;
	guest->regs[0] = kvm_hyp_ctxt.exits;
	return kvm_hyp_ctxt.exits < 16;
}

/* The hot path, in .text.hot (placed before .text by the linker script). */
__section(".text.hot.__kvm_vcpu_run")
int __kvm_vcpu_run(struct kvm_cpu_context *guest, struct kvm_cpu_context *host)
{
	u64 exit_code;

	guest->magic = KVM_CTXT_MAGIC;
	host->magic = KVM_CTXT_MAGIC;
	do {
		exit_code = __guest_enter(guest, host);
	} while (fixup_guest_exit(guest, &exit_code));

	return (int)exit_code;
}

noinline void __noreturn __hyp_do_panic(struct kvm_hyp_context *ctxt, u64 spsr, u64 elr, u64 par)
{
	volatile u64 *dump = (volatile u64 *)ctxt;

	dump[0] = spsr;
	dump[1] = elr;
	dump[2] = par;
#ifdef HYP_PANIC_DUMP_MORE	/* the `grown` variant: the fault syndrome too */
	dump[3] = read_sysreg(esr_el2);
	dump[4] = read_sysreg(far_el2);
	dump[5] = read_sysreg(hpfar_el2);
	dump[6] = read_sysreg(vbar_el2);
#endif
	for (;;)
		__asm__ __volatile__("wfi");
}

#ifdef HYP_PANIC_COLD	/* the `cold` variant: in .text.unlikely.hyp_panic */
void __noreturn __cold hyp_panic(void);
#endif

void __noreturn hyp_panic(void)
{
	u64 spsr = read_sysreg(spsr_el2);
	u64 elr = read_sysreg(elr_el2);
	u64 par = read_sysreg(par_el1);

	__hyp_do_panic(&kvm_hyp_ctxt, spsr, elr, par);
}
