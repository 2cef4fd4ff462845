/*
 * Exception entry, cut down from arch/arm/kernel/entry-armv.S: an A32 handler and the
 * Thumb-2 ones, all reaching do_undefinstr() (traps.c, linked after the filler).
 *
 * Assembled by GNU as (clang -fno-integrated-as, the kernel's LLVM_IAS=0): clang 14's own
 * assembler turns b.n/beq.n to another section into b.w/beq.w, GNU as keeps the 16-bit forms.
 */
#include <linux/linkage.h>

	.syntax unified
	.text

	.arm
ENTRY(__und_svc)
	cmp	r0, #0
	beq	do_undefinstr		@ R_ARM_JUMP24, +/-32 MiB
	bl	do_undefinstr		@ R_ARM_CALL
	bx	lr
ENDPROC(__und_svc)

	.thumb
	.thumb_func
ENTRY(__und_usr_thumb)
	cmp	r0, #0
	beq.w	do_undefinstr		@ R_ARM_THM_JUMP19, +/-1 MiB (ld.lld bridges it)
	cmp	r1, #0
	beq.n	__und_fault		@ R_ARM_THM_JUMP8, +/-256 B, a global in this section
	bl	do_undefinstr		@ R_ARM_THM_CALL
	b.n	do_undefinstr		@ R_ARM_THM_JUMP11, +/-2 KiB
ENDPROC(__und_usr_thumb)

	.thumb_func
ENTRY(__und_fault)
	cmp	r0, #1
	bne.w	do_undefinstr		@ R_ARM_THM_JUMP19
	b.n	do_undefinstr		@ R_ARM_THM_JUMP11
ENDPROC(__und_fault)
