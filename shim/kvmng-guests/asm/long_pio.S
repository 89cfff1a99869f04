/* long_pio: 64-bit; prints "kvmng long mode\n" on CONSOLE_PORT, reports
 * 0x64646464 on REPORT_PORT, halts. */
#include "conventions.inc"
	.code64
	.text
	.globl _start
_start:
	cli
	leaq	msg(%rip), %rsi
	movw	$CONSOLE_PORT, %dx
1:	movb	(%rsi), %al
	testb	%al, %al
	jz	2f
	outb	%al, %dx
	incq	%rsi
	jmp	1b
2:	movl	$0x64646464, %eax
	outl	%eax, $REPORT_PORT
3:	hlt
	jmp	3b

msg:	.asciz	"kvmng long mode\n"
