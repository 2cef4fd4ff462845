/* The hypervisor's context layout and entry points, shared by C and assembly. */
#ifndef __ARM64_KVM_HYP_H
#define __ARM64_KVM_HYP_H

/* Exit codes returned by __guest_enter. */
#define ARM_EXCEPTION_IRQ		0
#define ARM_EXCEPTION_EL1_SERROR	1
#define ARM_EXCEPTION_TRAP		2
#define ARM_EXCEPTION_IL		3

/* Bits of kvm_hyp_flags. */
#define KVM_HYP_FLAG_HOST_FP		0	/* host FP/SIMD state still in the registers */
#define KVM_HYP_FLAG_GUEST_FP		1	/* guest FP/SIMD state must be loaded on entry */

/* CPU feature number patched by the alternatives framework. */
#define ARM64_HAS_RAS_EXTN		17

/* Every valid context starts with this value. */
#define KVM_CTXT_MAGIC			0x4b564d2d63747874	/* "KVM-ctxt" */

/* struct kvm_cpu_context field offsets (checked against the C layout in vhe/switch.c). */
#define CTXT_MAGIC			0
#define CTXT_PANIC_LR			8
#define CTXT_REGS			16	/* x0..x30 */
#define CTXT_FP_REGS			272	/* q0..q31, 16-byte aligned */
#define CTXT_SIZE			784

/* struct kvm_hyp_context field offsets. */
#define HYP_CTXT_HOST			0
#define HYP_CTXT_GUEST			8
#define HYP_CTXT_EXITS			16

#ifndef __ASSEMBLY__

#include <linux/types.h>

struct kvm_cpu_context {
	u64 magic;
	u64 panic_lr;
	u64 regs[31];
	u64 __pad;
	u64 fp_regs[64];
} __aligned(16);

struct kvm_hyp_context {
	struct kvm_cpu_context *host;
	struct kvm_cpu_context *guest;
	u64 exits;
};

extern struct kvm_hyp_context kvm_hyp_ctxt;
extern u64 kvm_hyp_flags;

u64 __guest_enter(struct kvm_cpu_context *guest, struct kvm_cpu_context *host);
void __fpsimd_save_state(u64 *fp_regs);
void __fpsimd_restore_state(u64 *fp_regs);

int __kvm_vcpu_run(struct kvm_cpu_context *guest, struct kvm_cpu_context *host);
void __noreturn __hyp_do_panic(struct kvm_hyp_context *ctxt, u64 spsr, u64 elr, u64 par);
void __noreturn hyp_panic(void);

#define read_sysreg(r) ({					\
	u64 __val;						\
	__asm__ __volatile__("mrs %0, " #r : "=r" (__val));	\
	__val;							\
})

#endif /* __ASSEMBLY__ */

#endif /* __ARM64_KVM_HYP_H */
