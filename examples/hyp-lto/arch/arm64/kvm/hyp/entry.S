/*
 * World switch for the VHE hypervisor: enter a guest, come back on an exit.
 *
 * This file lands in the plain .text section, while hyp_panic() is C code in vhe/switch.c.
 * Built normally, the two objects are linked next to each other. With LTO, C code is compiled
 * at link time and the linker places the result after the native (assembly) objects, so
 * hyp_panic can end up megabytes away from here -- and `cbz` and `adr` reach only +/-1 MiB.
 *
 * Branch and address references below, by relocation (reach):
 *   cbz/cbnz/b.cond  R_AARCH64_CONDBR19          +/-1 MiB
 *   tbz/tbnz         R_AARCH64_TSTBR14           +/-32 KiB
 *   adr              R_AARCH64_ADR_PREL_LO21     +/-1 MiB
 *   ldr (literal)    R_AARCH64_LD_PREL_LO19      +/-1 MiB
 *   adrp             R_AARCH64_ADR_PREL_PG_HI21  +/-4 GiB
 *   b / bl           R_AARCH64_JUMP26/CALL26     +/-128 MiB
 */
#include <linux/linkage.h>
#include <asm/assembler.h>
#include <asm/kvm_hyp.h>

	.text

/*
 * u64 __guest_enter(struct kvm_cpu_context *guest, struct kvm_cpu_context *host)
 *
 * Returns an ARM_EXCEPTION_* code in x0.
 */
SYM_FUNC_START(__guest_enter)
	// No guest context: the state is corrupt, give up (CONDBR19 to hyp_panic)
	cbz	x0, hyp_panic
	stp	x29, x30, [sp, #-16]!
	mov	x29, sp
	mov	x9, x1
	// The host context must carry the magic (LD_PREL_LO19 to a literal in this .text)
	ldr	x2, __kvm_ctxt_magic
	ldr	x10, [x9, #CTXT_MAGIC]
	cmp	x2, x10
	b.ne	__guest_bad_ctxt
	// A panic on the way out returns into hyp_panic (ADR_PREL_LO21 to hyp_panic)
	adr	x1, hyp_panic
	str	x1, [x9, #CTXT_PANIC_LR]
	// Publish both contexts (ADRP + ADD)
	adrp	x3, kvm_hyp_ctxt
	add	x3, x3, :lo12:kvm_hyp_ctxt
	stp	x9, x0, [x3, #HYP_CTXT_HOST]
	ldr_l	x4, kvm_hyp_flags
	// Host FP/SIMD state still live: save it out of line, in .entry.text
	tbnz	x4, #KVM_HYP_FLAG_HOST_FP, .Lsave_host_fp
.Lhost_fp_saved:
	// Guest FP/SIMD state loaded lazily unless asked for now
	tbz	x4, #KVM_HYP_FLAG_GUEST_FP, __guest_enter_regs
	add	x11, x0, #CTXT_FP_REGS
	mov	x12, x0
	mov	x0, x11
	bl	__fpsimd_restore_state
	mov	x0, x12
SYM_INNER_LABEL(__guest_enter_regs)
	// An interrupt already pending: do not enter, report it
	mrs	x5, isr_el1
	cmp	x5, #0
	b.ne	.Lenter_pending_irq
	ldp	x2, x3, [x0, #CTXT_REGS + 16]
	ldp	x4, x5, [x0, #CTXT_REGS + 32]
	ldp	x6, x7, [x0, #CTXT_REGS + 48]
	// (eret to the guest would go here; the guest "exits" straight away)
	mov	x1, x0
	mov	x0, #ARM_EXCEPTION_TRAP
	b	__guest_exit
SYM_FUNC_END(__guest_enter)

/*
 * __guest_exit: x0 = exit code, x1 = guest context. Returns to __guest_enter's caller.
 */
SYM_FUNC_START(__guest_exit)
	stp	x2, x3, [x1, #CTXT_REGS + 16]
	stp	x4, x5, [x1, #CTXT_REGS + 32]
	stp	x6, x7, [x1, #CTXT_REGS + 48]
	// ALTERNATIVE("nop", "esb", ARM64_HAS_RAS_EXTN), spelt out the way the kernel's macro
	// expands it: the patch-site entry goes to .altinstructions (PREL32), the replacement
	// instruction to a later subsection of .text.
661:
	nop
662:
	.pushsection .altinstructions, "a"
	.word	661b - .
	.word	663f - .
	.hword	ARM64_HAS_RAS_EXTN
	.byte	662b - 661b
	.byte	664f - 663f
	.popsection
	.subsection 1
663:
	hint	#16
664:
	.previous
	// The guest context lost its magic: nothing sane to return to (CONDBR19 to hyp_panic)
	ldr	x2, [x1, #CTXT_MAGIC]
	cbz	x2, hyp_panic
	// An illegal exception return means the host context is suspect too
	cmp	x0, #ARM_EXCEPTION_IL
	b.eq	__guest_bad_ctxt
	adr_l	x3, kvm_hyp_ctxt
	ldr	x9, [x3, #HYP_CTXT_HOST]
	ldr	x10, [x3, #HYP_CTXT_EXITS]
	add	x10, x10, #1
	str	x10, [x3, #HYP_CTXT_EXITS]
	// Host FP/SIMD state back if it was saved on entry (TSTBR14 to .entry.text)
	ldr_l	w4, kvm_hyp_flags, x5
	tbnz	w4, #KVM_HYP_FLAG_HOST_FP, .Lexit_restore_host_fp
.Lexit_done:
	ldp	x29, x30, [sp], #16
	ret
SYM_FUNC_END(__guest_exit)

/* The host context failed its magic check: panic (JUMP26 to hyp_panic, always in reach). */
SYM_CODE_START(__guest_bad_ctxt)
	ldp	x29, x30, [sp], #16
	b	hyp_panic
SYM_CODE_END(__guest_bad_ctxt)

SYM_DATA_START(__kvm_ctxt_magic)
	.quad	KVM_CTXT_MAGIC
SYM_DATA_END(__kvm_ctxt_magic)

/*
 * Out-of-line slow paths, in .entry.text (placed just before .text by the linker script).
 * References into and out of here are to local labels in another section, so they are
 * left to the linker as relocations against the section symbol.
 */
	.pushsection .entry.text, "ax"
	.balign	4
.Lsave_host_fp:
	mov	x12, x0
	add	x0, x9, #CTXT_FP_REGS
	bl	__fpsimd_save_state
	mov	x0, x12
	ldr_l	x4, kvm_hyp_flags
	b	.Lhost_fp_saved
.Lenter_pending_irq:
	mov	x0, #ARM_EXCEPTION_IRQ
	ldp	x29, x30, [sp], #16
	ret
.Lexit_restore_host_fp:
	mov	x12, x0
	add	x0, x9, #CTXT_FP_REGS
	bl	__fpsimd_restore_state
	mov	x0, x12
	b	.Lexit_done
	.popsection
