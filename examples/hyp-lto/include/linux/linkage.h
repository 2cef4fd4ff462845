/* Symbol annotations for assembly, in the spirit of the kernel's SYM_* macros (our own, minimal). */
#ifndef __LINUX_LINKAGE_H
#define __LINUX_LINKAGE_H

#ifdef __ASSEMBLY__

/* A global function: aligned, typed as code, sized by its _END. */
#define SYM_FUNC_START(name)		\
	.globl	name;			\
	.balign	4;			\
	.type	name, %function;	\
	name:

#define SYM_FUNC_END(name)		\
	.size	name, . - name

/* Code that is not a normal C-callable function (exception paths, trampolines). */
#define SYM_CODE_START(name)		\
	.globl	name;			\
	.balign	4;			\
	.type	name, %function;	\
	name:

#define SYM_CODE_END(name)		\
	.size	name, . - name

/* A global label inside a function, e.g. a second entry point. */
#define SYM_INNER_LABEL(name)		\
	.globl	name;			\
	.type	name, %function;	\
	name:

/* A global data object. */
#define SYM_DATA_START(name)		\
	.globl	name;			\
	.balign	8;			\
	.type	name, %object;		\
	name:

#define SYM_DATA_END(name)		\
	.size	name, . - name

#endif /* __ASSEMBLY__ */

#endif /* __LINUX_LINKAGE_H */
