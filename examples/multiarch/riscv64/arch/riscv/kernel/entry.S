/*
 * Trap entry, cut down from arch/riscv/kernel/entry.S: conditional branches (R_RISCV_BRANCH,
 * +/-4 KiB) and jal (R_RISCV_JAL, +/-1 MiB) to the C handlers in traps.c, which is linked
 * after the filler. Built with -mno-relax: ld.lld 14 does not relax, and the layout is the same
 * for GNU ld.
 */
#include <linux/linkage.h>

	.option norelax
	.text

ENTRY(handle_exception)
	csrr	a0, scause
	beqz	a0, do_trap_insn_fault		/* R_RISCV_BRANCH */
	li	a1, 8
	beq	a0, a1, do_trap_ecall_u		/* R_RISCV_BRANCH */
	bnez	a2, ret_from_exception		/* R_RISCV_BRANCH, a global in this section */
	jal	do_trap_unknown			/* R_RISCV_JAL */
	j	ret_from_exception		/* R_RISCV_JAL */
ENDPROC(handle_exception)

ENTRY(ret_from_exception)
	csrr	a0, sstatus
	bnez	a0, do_trap_unknown		/* R_RISCV_BRANCH */
	call	do_trap_ecall_u			/* R_RISCV_CALL_PLT, +/-2 GiB */
	sret
ENDPROC(ret_from_exception)
