/* mmio_loop: real mode; endless loop of 32-bit writes of an incrementing
 * counter (starting at 0) to MMIO_REAL: one MMIO exit per iteration. */
#include "conventions.inc"
	.code16
	.text
	.globl _start
_start:
	cli
	movw	$(MMIO_REAL >> 4), %ax
	movw	%ax, %es
	xorl	%eax, %eax
1:	movl	%eax, %es:0
	incl	%eax
	jmp	1b
