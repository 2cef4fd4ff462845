/*
 * The C exception handlers, cut down from arch/powerpc/kernel/traps.c. Built with
 * -ffunction-sections: each is its own .text.<name> section, linked after the filler.
 * They use no TOC, so they have a single entry point and a branch to them needs no TOC setup.
 */
struct pt_regs {
	unsigned long nip, msr, trap, result;
};

__attribute__((noinline)) void unknown_exception(struct pt_regs *regs)
{
	regs->result = regs->trap;
}

__attribute__((noinline)) void program_check_exception(struct pt_regs *regs)
{
	regs->nip += 4;
	regs->result = 0;
}
