/*
 * FP/SIMD register save and restore for the hypervisor. Linked right after entry.S, so its
 * .text follows __guest_enter's and the calls into it stay short.
 */
#include <linux/linkage.h>

	.text

/* void __fpsimd_save_state(u64 *fp_regs): q0..q31 to fp_regs[0..63] (16-byte aligned). */
SYM_FUNC_START(__fpsimd_save_state)
	stp	q0, q1, [x0, #0]
	stp	q2, q3, [x0, #32]
	stp	q4, q5, [x0, #64]
	stp	q6, q7, [x0, #96]
	stp	q8, q9, [x0, #128]
	stp	q10, q11, [x0, #160]
	stp	q12, q13, [x0, #192]
	stp	q14, q15, [x0, #224]
	stp	q16, q17, [x0, #256]
	stp	q18, q19, [x0, #288]
	stp	q20, q21, [x0, #320]
	stp	q22, q23, [x0, #352]
	stp	q24, q25, [x0, #384]
	stp	q26, q27, [x0, #416]
	stp	q28, q29, [x0, #448]
	stp	q30, q31, [x0, #480]
	ret
SYM_FUNC_END(__fpsimd_save_state)

/* void __fpsimd_restore_state(u64 *fp_regs): the reverse. */
SYM_FUNC_START(__fpsimd_restore_state)
	ldp	q0, q1, [x0, #0]
	ldp	q2, q3, [x0, #32]
	ldp	q4, q5, [x0, #64]
	ldp	q6, q7, [x0, #96]
	ldp	q8, q9, [x0, #128]
	ldp	q10, q11, [x0, #160]
	ldp	q12, q13, [x0, #192]
	ldp	q14, q15, [x0, #224]
	ldp	q16, q17, [x0, #256]
	ldp	q18, q19, [x0, #288]
	ldp	q20, q21, [x0, #320]
	ldp	q22, q23, [x0, #352]
	ldp	q24, q25, [x0, #384]
	ldp	q26, q27, [x0, #416]
	ldp	q28, q29, [x0, #448]
	ldp	q30, q31, [x0, #480]
	ret
SYM_FUNC_END(__fpsimd_restore_state)
