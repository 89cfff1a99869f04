/* irq_real: real mode, userspace irqchip (host injects with KVM_INTERRUPT
 * and KVM_NMI).  Vector 0x20 reports 0x20 on IRQ_PORT; vector 2 (NMI)
 * reports 2 on NMI_PORT.  Reports 1 on REPORT_PORT when ready, then
 * enables interrupts and halts in a loop; handlers return to the loop. */
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
	/* IVT entry n at 4*n: offset, then segment (0). */
	movw	$irq20, 0x20 * 4
	movw	$0, 0x20 * 4 + 2
	movw	$nmi, 2 * 4
	movw	$0, 2 * 4 + 2
	movl	$1, %eax
	outl	%eax, $REPORT_PORT
	sti
1:	hlt
	jmp	1b

irq20:	pushw	%ax
	movb	$0x20, %al
	outb	%al, $IRQ_PORT
	popw	%ax
	iret

nmi:	pushw	%ax
	movb	$2, %al
	outb	%al, $NMI_PORT
	popw	%ax
	iret
