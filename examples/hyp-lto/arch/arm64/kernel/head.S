/*
 * The first bytes of the image, in .head.text: a branch to the C entry point and a small
 * image header (the fields a boot loader would read; left zero in this example).
 */
#include <linux/linkage.h>

	.section .head.text, "ax"

SYM_CODE_START(_head)
	b	start_kernel			// JUMP26, to init/main.c
	.long	0				// reserved
	.quad	0				// image load offset
	.quad	0				// effective image size
	.quad	0				// flags
	.quad	0				// reserved
	.quad	0				// reserved
	.quad	0				// reserved
	.ascii	"ARM\x64"			// magic
	.long	0				// reserved
SYM_CODE_END(_head)
