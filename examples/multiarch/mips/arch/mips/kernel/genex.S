/*
 * Exception dispatch, cut down from arch/mips/kernel/genex.S: branches (R_MIPS_PC16, +/-128 KiB
 * from the delay slot) and jal (R_MIPS_26, the 256 MiB region) to the C handlers in traps.c,
 * which is linked after the filler. In the assembler's default reorder mode: it fills the delay
 * slots.
 */
#include <linux/linkage.h>

	.text

ENTRY(handle_exception)
	mfc0	$k0, $13			# CP0 cause
	beq	$k0, $zero, do_ri		# R_MIPS_PC16, a beqz to the disassembler
	li	$k1, 8
	beq	$k0, $k1, do_syscall		# R_MIPS_PC16
	bnez	$a2, ret_from_exception		# R_MIPS_PC16, a global in this section
	jal	do_unknown			# R_MIPS_26
	b	ret_from_exception		# R_MIPS_PC16
ENDPROC(handle_exception)

ENTRY(ret_from_exception)
	mfc0	$k0, $12			# CP0 status
	bltz	$k0, do_unknown			# R_MIPS_PC16
	bal	do_syscall			# R_MIPS_PC16
	eret
ENDPROC(ret_from_exception)
