/*
 * Assembler macros for arm64 code in this tree.
 *
 * adr/ldr-literal reach only +/-1 MiB from the instruction; the *_l forms below go through
 * ADRP (+/-4 GiB, 4 KiB pages) and a :lo12: offset, so they work wherever the symbol is.
 */
#ifndef __ASM_ASSEMBLER_H
#define __ASM_ASSEMBLER_H

#ifndef __ASSEMBLY__
#error "asm/assembler.h is for assembly sources only"
#endif

/* \dst = &\sym  (ADRP + ADD :lo12:) */
	.macro	adr_l, dst, sym
	adrp	\dst, \sym
	add	\dst, \dst, :lo12:\sym
	.endm

/*
 * \dst = *\sym  (ADRP + LDR :lo12:). With \tmp, the page address goes to \tmp and \dst is
 * only loaded, so \dst may be a W or FP/SIMD register.
 */
	.macro	ldr_l, dst, sym, tmp=
	.ifb	\tmp
	adrp	\dst, \sym
	ldr	\dst, [\dst, :lo12:\sym]
	.else
	adrp	\tmp, \sym
	ldr	\dst, [\tmp, :lo12:\sym]
	.endif
	.endm

/* *\sym = \src, using \tmp for the page address (ADRP + STR :lo12:). */
	.macro	str_l, src, sym, tmp
	adrp	\tmp, \sym
	str	\src, [\tmp, :lo12:\sym]
	.endm

#endif /* __ASM_ASSEMBLER_H */
