/* irq_pic: real mode, in-kernel irqchip (KVM_CREATE_IRQCHIP), interrupt
 * raised by the host with KVM_IRQ_LINE on GSI 1.  Programs the master 8259
 * to vectors 0x20..0x27 with only IRQ1 unmasked; vector 0x21 reports 0x21
 * on IRQ_PORT and sends EOI.  Reports 1 on REPORT_PORT when ready, then
 * enables interrupts and halts in a loop. */
#include "conventions.inc"
	.code16
	.text
	.globl _start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	%ax, %ss
	movw	$STACK_TOP, %sp
	movw	$irq21, 0x21 * 4
	movw	$0, 0x21 * 4 + 2
	movb	$0x11, %al		/* ICW1: edge, cascade, ICW4 needed */
	outb	%al, $PIC1_CMD
	movb	$0x20, %al		/* ICW2: vectors 0x20..0x27 */
	outb	%al, $PIC1_DATA
	movb	$0x04, %al		/* ICW3: slave on IRQ2 */
	outb	%al, $PIC1_DATA
	movb	$0x01, %al		/* ICW4: 8086 mode */
	outb	%al, $PIC1_DATA
	movb	$0xFD, %al		/* OCW1: unmask IRQ1 only */
	outb	%al, $PIC1_DATA
	movl	$1, %eax
	outl	%eax, $REPORT_PORT
	sti
1:	hlt
	jmp	1b

irq21:	pushw	%ax
	movb	$0x21, %al
	outb	%al, $IRQ_PORT
	movb	$0x20, %al		/* non-specific EOI */
	outb	%al, $PIC1_CMD
	popw	%ax
	iret
