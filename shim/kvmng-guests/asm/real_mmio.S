/* real_mmio: real mode; 16-bit write of 0x1234 to MMIO_REAL, 32-bit read
 * from MMIO_REAL+8, reports the value read on REPORT_PORT, halts. */
#include "conventions.inc"
	.code16
	.text
	.globl _start
_start:
	cli
	movw	$(MMIO_REAL >> 4), %ax
	movw	%ax, %es
	movw	$0x1234, %es:0
	movl	%es:8, %eax
	outl	%eax, $REPORT_PORT
1:	hlt
	jmp	1b
