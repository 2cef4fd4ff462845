/*
 * The C trap handlers, cut down from arch/riscv/kernel/traps.c. Built with -ffunction-sections:
 * each is its own .text.<name> section, linked after the filler.
 */
struct pt_regs {
	unsigned long epc, ra, sp, cause;
};

unsigned long trap_count;

__attribute__((noinline)) void do_trap_unknown(struct pt_regs *regs)
{
	trap_count++;
	regs->epc += 4;
}

__attribute__((noinline)) void do_trap_ecall_u(struct pt_regs *regs)
{
	regs->epc += 4;
	regs->cause = 0;
}

__attribute__((noinline)) void do_trap_insn_fault(struct pt_regs *regs)
{
	trap_count += regs->cause;
}
