/* ioregion_regs: 64-bit; a register file at MMIO_LONG and IOREGION_PORT
 * (served by a device through kvmng_ioregion). Writes 1, 2, 4 and 8 bytes
 * at MMIO_LONG + 0, 8, 16 and 24, reads each back and reports it on
 * REPORT_PORT (the 8-byte one as two reports, low half first); a 4-byte
 * OUT of 0x66666666 to IOREGION_PORT, a 2-byte IN from IOREGION_PORT + 2,
 * reported; then DONE_PORT = 0 and HLT. */
#include "conventions.inc"
	.code64
	.text
	.globl _start
_start:
	cli
	movb	$0x11, MMIO_LONG
	movw	$0x2222, MMIO_LONG + 8
	movl	$0x33333333, MMIO_LONG + 16
	movabsq	$0x4444444455555555, %rax
	movq	%rax, MMIO_LONG + 24
	movzbl	MMIO_LONG, %eax
	outl	%eax, $REPORT_PORT
	movzwl	MMIO_LONG + 8, %eax
	outl	%eax, $REPORT_PORT
	movl	MMIO_LONG + 16, %eax
	outl	%eax, $REPORT_PORT
	movq	MMIO_LONG + 24, %rax
	outl	%eax, $REPORT_PORT
	shrq	$32, %rax
	outl	%eax, $REPORT_PORT
	movw	$IOREGION_PORT, %dx
	movl	$0x66666666, %eax
	outl	%eax, %dx
	addw	$2, %dx
	xorl	%eax, %eax
	inw	%dx, %ax
	outl	%eax, $REPORT_PORT
	xorl	%eax, %eax
	outl	%eax, $DONE_PORT
1:	hlt
	jmp	1b
