/* The C entry point _head branches to: run one guest forever. */
#include <linux/types.h>
#include <asm/kvm_hyp.h>

static struct kvm_cpu_context guest_ctxt;
static struct kvm_cpu_context host_ctxt;

void __noreturn start_kernel(void)
{
	for (;;)
		__kvm_vcpu_run(&guest_ctxt, &host_ctxt);
}
