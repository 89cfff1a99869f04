/* real_pio: real mode; prints "kvmng real mode\n" on CONSOLE_PORT byte by
 * byte, reports 0x600DF00D on REPORT_PORT, then halts. */
#include "conventions.inc"
	.code16
	.text
	.globl _start
_start:
	cli
	xorw	%ax, %ax
	movw	%ax, %ds
	movw	$msg, %si
	movw	$CONSOLE_PORT, %dx
1:	movb	(%si), %al
	testb	%al, %al
	jz	2f
	outb	%al, %dx
	incw	%si
	jmp	1b
2:	movl	$0x600DF00D, %eax
	outl	%eax, $REPORT_PORT
3:	hlt
	jmp	3b

msg:	.asciz	"kvmng real mode\n"
