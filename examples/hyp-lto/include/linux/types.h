/* Fixed-width integer types for a tree built with -nostdinc. */
#ifndef __LINUX_TYPES_H
#define __LINUX_TYPES_H

#ifndef __ASSEMBLY__

typedef unsigned char		u8;
typedef unsigned short		u16;
typedef unsigned int		u32;
typedef unsigned long long	u64;
typedef long long		s64;
typedef _Bool			bool;

#define true	1
#define false	0
#define NULL	((void *)0)

#endif /* __ASSEMBLY__ */

#endif /* __LINUX_TYPES_H */
