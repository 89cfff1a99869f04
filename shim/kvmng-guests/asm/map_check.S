/* map_check: 64-bit; checks that two memslots (A at SLOT_A_GPA, B at
 * SLOT_B_GPA) always hold the same first qword while the host remaps them.
 *
 * loop:
 *   a = [SLOT_A_GPA]; b = [SLOT_B_GPA]; a2 = [SLOT_A_GPA]
 *   if a == a2 and a != b: OUT FAIL_PORT, low 32 bits of a  (and carry on)
 *
 * A is read before and after B because the vCPU can be stopped between
 * any two loads: a whole (atomic) update may land between them. The host
 * gives every update a value never used before, so a == a2 means no update
 * was applied between the two reads of A, and B must then equal A. (With
 * a static map, a == a2 always, and the check is just a != b.)
 *   [COUNTER_GPA] += 1
 *   if [STOP_FLAG_GPA] != 0: OUT DONE_PORT, low 32 bits of the counter; HLT
 *
 * If A or B is unbacked at the moment of the read (a non-atomic memslot
 * update), the read becomes a KVM_EXIT_MMIO at SLOT_A_GPA or SLOT_B_GPA;
 * the host test treats such an exit as an atomicity failure. */
#include "conventions.inc"
	.code64
	.text
	.globl _start
_start:
	cli
1:	movq	SLOT_A_GPA, %rax
	movq	SLOT_B_GPA, %rbx
	movq	SLOT_A_GPA, %rcx
	cmpq	%rax, %rcx
	jne	2f
	cmpq	%rax, %rbx
	je	2f
	outl	%eax, $FAIL_PORT
2:	incq	COUNTER_GPA
	cmpq	$0, STOP_FLAG_GPA
	je	1b
	movq	COUNTER_GPA, %rax
	outl	%eax, $DONE_PORT
3:	hlt
	jmp	3b
