/*
 * The C exception handlers, cut down from arch/mips/kernel/traps.c. Built with -ffunction-sections:
 * each is its own .text.<name> section, linked after the filler.
 */
struct pt_regs {
	unsigned long cp0_epc, regs31, cp0_cause;
};

unsigned long trap_count;

__attribute__((noinline)) void do_unknown(struct pt_regs *regs)
{
	trap_count++;
	regs->cp0_epc += 4;
}

__attribute__((noinline)) void do_syscall(struct pt_regs *regs)
{
	regs->cp0_epc += 4;
	regs->cp0_cause = 0;
}

__attribute__((noinline)) void do_ri(struct pt_regs *regs)
{
	trap_count += regs->cp0_cause;
}
