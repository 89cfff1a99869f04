/* long_mmio: 64-bit; 8-byte write of 0x1122334455667788 to MMIO_LONG,
 * 4-byte read from MMIO_LONG+8, reports the value read on REPORT_PORT,
 * halts. */
#include "conventions.inc"
	.code64
	.text
	.globl _start
_start:
	cli
	movabsq	$0x1122334455667788, %rax
	movq	%rax, MMIO_LONG
	movl	MMIO_LONG + 8, %eax
	outl	%eax, $REPORT_PORT
1:	hlt
	jmp	1b
