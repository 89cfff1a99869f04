/* ioregion_smp: 64-bit, for any number of vCPUs at once. The host sets
 * RBX = the vCPU's index and RCX = iterations (>= 1). Each vCPU owns the
 * qword at MMIO_LONG + 8 * RBX: for i in 0..RCX it writes
 * (RBX << 32 | i) there and reads it back. A mismatch: FAIL_PORT = the low
 * half of the value read, HLT. Else DONE_PORT = RCX, HLT. It uses no
 * stack and writes no memory, so vCPUs can share the code. */
#include "conventions.inc"
	.code64
	.text
	.globl _start
_start:
	cli
	leaq	MMIO_LONG(,%rbx,8), %rdi
	xorl	%r8d, %r8d
1:	movq	%rbx, %rax
	shlq	$32, %rax
	orq	%r8, %rax
	movq	%rax, (%rdi)
	movq	(%rdi), %rdx
	cmpq	%rax, %rdx
	jne	2f
	incq	%r8
	cmpq	%rcx, %r8
	jb	1b
	movl	%r8d, %eax
	outl	%eax, $DONE_PORT
3:	hlt
	jmp	3b
2:	movl	%edx, %eax
	outl	%eax, $FAIL_PORT
	jmp	3b
