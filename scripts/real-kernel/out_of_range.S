/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Out-of-range references of our own making, linked only into the clang-lto-overflow build of
 * the real-kernel tests: short-reach instructions on both sides of 1 MiB of .text, so that
 * wherever the linker places their targets some of them cannot reach and ld.lld reports them.
 */
#include <linux/linkage.h>

	.text
SYM_CODE_START(reachls_oor_before_padding)
	cbz	x0, panic
	adr	x1, jiffies_64
	ldr	x2, jiffies_64
	ret
SYM_CODE_END(reachls_oor_before_padding)

	.skip	0x100000

SYM_CODE_START(reachls_oor_after_padding)
	cbnz	x0, vectors
	tbnz	x0, #0, vectors
	adr	x1, vectors
	ret
SYM_CODE_END(reachls_oor_after_padding)
