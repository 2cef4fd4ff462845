/*
 * Exception entry, cut down from arch/powerpc/kernel/exceptions-64s.S: conditional branches
 * (`beq`, `bc`: R_PPC64_REL14, +/-32 KiB) and `b`/`bl` (R_PPC64_REL24, +/-32 MiB) to the C
 * handlers in traps.c, which is linked after the filler. ld.lld 14 and GNU ld both bridge an
 * out-of-range REL14 with a long-branch stub: see ../../../../README.md.
 */
#include <linux/linkage.h>

	.abiversion 2
	.text

ENTRY(program_check_common)
	cmpdi	%r3, 0
	beq	%cr0, program_check_exception	/* R_PPC64_REL14 */
	cmpdi	%r4, 8
	bc	12, 2, unknown_exception	/* R_PPC64_REL14: bc 12,2 is beq */
	bne	%cr0, ret_from_except		/* R_PPC64_REL14, a global in this section */
	bl	unknown_exception		/* R_PPC64_REL24 */
	nop
	b	ret_from_except			/* R_PPC64_REL24 */
ENDPROC(program_check_common)

ENTRY(ret_from_except)
	cmpdi	%r3, 0
	bne	%cr0, unknown_exception		/* R_PPC64_REL14 */
	blr
ENDPROC(ret_from_except)
