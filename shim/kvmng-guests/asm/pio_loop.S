/* pio_loop: real mode; endless loop of a 32-bit OUT of an incrementing
 * counter (starting at 0) to REPORT_PORT: one PIO exit per iteration. */
#include "conventions.inc"
	.code16
	.text
	.globl _start
_start:
	cli
	xorl	%eax, %eax
1:	outl	%eax, $REPORT_PORT
	incl	%eax
	jmp	1b
