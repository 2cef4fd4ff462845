/* The kernel's ENTRY/END/ENDPROC, cut down (assembly only). */
#ifndef _LINUX_LINKAGE_H
#define _LINUX_LINKAGE_H

#ifdef __ASSEMBLY__
#define ENTRY(name) \
	.globl name; \
	.type name, @function; \
	.balign 4; \
	name:
#define ENDPROC(name) \
	.size name, . - name
#endif

#endif
