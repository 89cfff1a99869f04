/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvmng-smp's guest: 64-bit, one copy shared by every vCPU (layout.h has the
 * memory layout; the host sets RSP to the vCPU's stack, RBX to its data
 * area, the IDTR, the page tables and long mode).
 *
 * Start: TPR 0, LAPIC software-enabled (SVR 0x1FF); the BSP (vCPU 0, put
 *        in long mode by the host) waits for GO (its POST, while the APs
 *        sit in KVM_RUN waiting for their SIPI and the host remaps
 *        memory), then starts the APs as SeaBIOS does: INIT, SIPI, SIPI
 *        to all but itself; the APs come through the
 *        trampoline below, which finds their stack and data area from
 *        their APIC ID; READY = 1.
 * Loop:  cli; p = [SLOT_P]; q = [SLOT_Q]     (an unbacked read is an MMIO
 *                                             exit the host answers with 0)
 *        SEEN_P = p; SEEN_Q = q
 *        each nonzero value below LAST (the largest seen) counts ORDER_ERR,
 *        else becomes LAST: the host only ever shows growing generations,
 *        so a smaller one is a stale mapping
 *        LOOPS += 1; IDLE = 1; sti; hlt
 * So between interrupts a vCPU sits in HLT inside KVM_RUN without exits,
 * as idle SMP guests (and SeaBIOS's APs) do, and polls once after each
 * interrupt (an interrupt that comes while it polls is taken at the
 * sti; hlt, which then goes round again). IDLE = 1 with the state the
 * host expects means the vCPU has nothing left to do but HLT: no exit
 * comes between that store and the HLT.
 * Interrupts: vectors 0x40 (KVM_IRQ_LINE through the IOAPIC), 0x41 (irqfd
 * through the IOAPIC), 0x42 (KVM_SIGNAL_MSI; its handler first sends an
 * IPI, vector 0x44, to the next vCPU), 0x44 (that IPI), 0x50-0x53 (irqfds
 * on the MSI routes of KVM_SET_GSI_ROUTING, one vector per source),
 * anything else from 0x20 up ("other"): IDLE = 0, count += 1 in the data
 * area, OUT IRQ_PORT (8 bits) = the count's index (0, 1, 2, 16, 12-15,
 * 8), EOI to the LAPIC, iretq. Vectors 0-31 (an
 * exception) report OUT FAIL_PORT = 0xdead0000 and stop with interrupts
 * off (the host reads RIP and the frame to say where).
 *
 * The code is position-independent with respect to its own labels (the
 * host computes the handlers' addresses from their offsets) and uses
 * absolute addresses only for the fixed areas of layout.h.
 */
#include "layout.h"

	.section .rodata.smp_guest, "a"
	.code64
	.balign 16
	.globl smp_guest_start, smp_guest_end
	.globl smp_guest_irq_line, smp_guest_irqfd, smp_guest_msi, smp_guest_routed
	.globl smp_guest_ipi
	.globl smp_guest_other, smp_guest_fatal
smp_guest_start:
	cli
	movl	$LAPIC_GPA, %edi
	movl	$0, LAPIC_TPR(%rdi)
	movl	$0x1ff, LAPIC_SVR(%rdi)
	cmpq	$DATA_GPA, %rbx
	jne	0f
8:	pause
	cmpq	$0, GO_GPA
	je	8b
	movl	$0, LAPIC_ICR_HI(%rdi)
	movl	$0x000C4500, LAPIC_ICR_LO(%rdi)			/* INIT, all but self */
	movl	$(0x000C4600 | SIPI_VECTOR), LAPIC_ICR_LO(%rdi)	/* SIPI */
	movl	$(0x000C4600 | SIPI_VECTOR), LAPIC_ICR_LO(%rdi)	/* SIPI again */
0:	movq	$1, D_READY(%rbx)
1:	cli
	movq	SLOT_P_GPA, %rax
	movq	SLOT_Q_GPA, %rcx
	movq	%rax, D_SEEN_P(%rbx)
	movq	%rcx, D_SEEN_Q(%rbx)
	testq	%rax, %rax
	jz	3f
	cmpq	D_LAST(%rbx), %rax
	jae	2f
	incq	D_ORDER_ERR(%rbx)
	jmp	3f
2:	movq	%rax, D_LAST(%rbx)
3:	testq	%rcx, %rcx
	jz	5f
	cmpq	D_LAST(%rbx), %rcx
	jae	4f
	incq	D_ORDER_ERR(%rbx)
	jmp	5f
4:	movq	%rcx, D_LAST(%rbx)
5:	incq	D_LOOPS(%rbx)
	movq	$1, D_IDLE(%rbx)
	sti
	hlt
	jmp	1b

smp_guest_irq_line:
	pushq	%rax
	movl	$D_IRQ_LINE, %eax
	jmp	irq_common
smp_guest_irqfd:
	pushq	%rax
	movl	$D_IRQFD, %eax
	jmp	irq_common
smp_guest_msi:
	/* Passes it on: an IPI to the next vCPU (APIC ID + 1, modulo the
	 * number of vCPUs), before the count and the EOI. */
	pushq	%rax
	pushq	%rdi
	movl	$LAPIC_GPA, %edi
	movl	LAPIC_ID(%rdi), %eax
	shrl	$24, %eax
	incl	%eax
	cmpl	NCPUS_GPA, %eax
	jb	9f
	xorl	%eax, %eax
9:	shll	$24, %eax
	movl	%eax, LAPIC_ICR_HI(%rdi)
	movl	$VEC_IPI, LAPIC_ICR_LO(%rdi)
	popq	%rdi
	movl	$D_MSI, %eax
	jmp	irq_common
smp_guest_ipi:
	pushq	%rax
	movl	$D_IPI, %eax
	jmp	irq_common
	/* Four entry points 16 bytes apart: VEC_ROUTED + k at
	 * smp_guest_routed + 16 * k. */
	.balign 16
smp_guest_routed:
	.irp k, 0, 1, 2, 3
	.balign 16
	pushq	%rax
	movl	$(D_ROUTED + 8 * \k), %eax
	jmp	irq_common
	.endr
smp_guest_other:
	pushq	%rax
	movl	$D_OTHER, %eax
irq_common:
	pushq	%rdx
	movq	$0, D_IDLE(%rbx)
	incq	(%rbx,%rax)
	shrl	$3, %eax
	outb	%al, $IRQ_PORT
	movl	$LAPIC_GPA, %edx
	movl	$0, LAPIC_EOI(%rdx)
	popq	%rdx
	popq	%rax
	iretq

smp_guest_fatal:
	movl	$0xdead0000, %eax
	outl	%eax, $FAIL_PORT
	cli
7:	hlt
	jmp	7b
smp_guest_end:

/*
 * The APs' trampoline, copied to TRAMP_GPA: the SIPI starts an AP in real
 * mode at CS = TRAMP_GPA >> 4, IP = 0. Protected mode with the GDT of
 * layout.h, then PAE, the host's page tables, EFER.LME and paging; in
 * 64-bit mode RSP and RBX from the APIC ID, the IDT, and the guest code.
 */
	.balign 16
	.globl smp_tramp_start, smp_tramp_end
smp_tramp_start:
	.code16
	cli
	xorw	%ax, %ax
	movw	%ax, %ds
	lgdtl	GDTR_GPA
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	$0x18, $(TRAMP_GPA + tramp32 - smp_tramp_start)
	.code32
tramp32:
	movw	$0x10, %ax
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movl	%cr4, %eax
	orl	$0x20, %eax
	movl	%eax, %cr4
	movl	$PML4_GPA, %eax
	movl	%eax, %cr3
	movl	$0xC0000080, %ecx
	rdmsr
	orl	$0x100, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000000, %eax
	movl	%eax, %cr0
	ljmpl	$0x08, $(TRAMP_GPA + tramp64 - smp_tramp_start)
	.code64
tramp64:
	movl	$LAPIC_GPA, %edi
	movl	LAPIC_ID(%rdi), %eax
	shrl	$24, %eax
	movl	%eax, %ebx
	shll	$8, %ebx
	addl	$DATA_GPA, %ebx
	incl	%eax
	shll	$12, %eax
	addl	$STACKS_GPA, %eax
	movl	%eax, %esp
	lidt	IDTR_GPA
	movl	$LOAD_GPA, %eax
	jmp	*%rax
smp_tramp_end:

	.section .note.GNU-stack, "", @progbits
