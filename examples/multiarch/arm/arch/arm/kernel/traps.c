/*
 * The C side of the undefined-instruction trap, cut down from arch/arm/kernel/traps.c.
 * Built as Thumb-2 (CONFIG_THUMB2_KERNEL) with -ffunction-sections: do_undefinstr() is its
 * own .text.do_undefinstr section, linked last.
 */
struct pt_regs {
	unsigned long uregs[18];
};

unsigned long undef_count;

__attribute__((noinline)) void do_undefinstr(struct pt_regs *regs)
{
	undef_count++;
	regs->uregs[15] += 4;
}
