/* mmio_bench: 64-bit; RCX (>= 1) 4-byte accesses to the address in RSI:
 * writes of 0, 1, 2, ... when RDI = 0, reads when RDI != 0; then
 * DONE_PORT = the last value written (+1) or read, HLT. The loop does
 * nothing else, so the time per access is the cost of the access. */
#include "conventions.inc"
	.code64
	.text
	.globl _start
_start:
	cli
	xorl	%eax, %eax
	testq	%rdi, %rdi
	jnz	2f
1:	movl	%eax, (%rsi)
	incl	%eax
	decq	%rcx
	jnz	1b
	jmp	3f
2:	movl	(%rsi), %eax
	decq	%rcx
	jnz	2b
3:	outl	%eax, $DONE_PORT
4:	hlt
	jmp	4b
