/* Compiler annotations used by the C files of this tree (included first, with -include). */
#ifndef __LINUX_COMPILER_TYPES_H
#define __LINUX_COMPILER_TYPES_H

#ifndef __ASSEMBLY__

/* Put a function or object into the named input section, e.g. __section(".text.hot.foo"). */
#define __section(s)		__attribute__((__section__(s)))
#define __noreturn		__attribute__((__noreturn__))
#define __always_inline		inline __attribute__((__always_inline__))
#define noinline		__attribute__((__noinline__))
#define __cold			__attribute__((__cold__))
#define __used			__attribute__((__used__))
#define __aligned(x)		__attribute__((__aligned__(x)))
#define notrace			__attribute__((__no_instrument_function__))

#define barrier()		__asm__ __volatile__("" : : : "memory")
#define unreachable()		__builtin_unreachable()

#endif /* __ASSEMBLY__ */

#endif /* __LINUX_COMPILER_TYPES_H */
