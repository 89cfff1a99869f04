/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvmng-smp: guest physical memory layout and guest data offsets, shared
 * by the guest (guest.S) and the host (C).
 *
 *   0x0000_1000  guest code (guest.S), at most 0x6000 bytes
 *   0x0000_7000  the APs' trampoline (SIPI vector 0x07): real mode to long
 *                mode, then the guest code
 *   0x0000_8000  IDT, 256 x 16 bytes
 *   0x0000_9000  PML4; 0xA000 PDPT; 0xB000..0xF000 four PDs: the first
 *                4 GiB identity-mapped with 2 MiB pages (the LAPIC too)
 *   0x0000_F000  GDT: null, 0x08 64-bit code, 0x10 flat data, 0x18 32-bit
 *                code; 0xF100 its GDTR image (lgdtl), 0xF110 the IDTR
 *                image (lidt in 64-bit mode); 0xF200 GO: the host sets it
 *                to 1 to let the BSP start the APs; 0xF208 the number of
 *                vCPUs
 *   0x0001_0000  stacks, one 4 KiB page per vCPU (RSP = top of page i)
 *   0x0002_0000  data areas, 0x100 bytes per vCPU (D_* offsets)
 *   slot 0 ends at LOW_MEM (1 MiB)
 *   0x0020_0000  SLOT_P_GPA, 0x0040_0000 SLOT_Q_GPA: where the data slot
 *                (slot 1, DATA_SLOT_SIZE) is created, moved and deleted;
 *                its first qword is the generation the host shows
 *   0xFEC0_0000  IOAPIC (in-kernel), 0xFEE0_0000 LAPIC (in-kernel)
 */
#ifndef KVMNG_SMP_LAYOUT_H
#define KVMNG_SMP_LAYOUT_H

#define LOAD_GPA	0x1000
#define IDT_GPA		0x8000
#define PML4_GPA	0x9000
#define PDPT_GPA	0xA000
#define PD_GPA		0xB000
#define GDT_GPA		0xF000
#define GDTR_GPA	0xF100
#define IDTR_GPA	0xF110
#define GO_GPA		0xF200
#define NCPUS_GPA	0xF208	/* dword: the number of vCPUs */
#define TRAMP_GPA	0x7000
#define SIPI_VECTOR	0x07
#define STACKS_GPA	0x10000
#define DATA_GPA	0x20000
#define DATA_STRIDE	0x100
#define LOW_MEM		0x100000
#define SLOT_P_GPA	0x200000
#define SLOT_Q_GPA	0x400000
#define DATA_SLOT_SIZE	0x10000
#define LAPIC_GPA	0xFEE00000
#define LAPIC_TPR	0x80
#define LAPIC_EOI	0xB0
#define LAPIC_SVR	0xF0
#define LAPIC_ID	0x20
#define LAPIC_ICR_LO	0x300
#define LAPIC_ICR_HI	0x310

#define IRQ_PORT	0x13
#define FAIL_PORT	0x11

/* Offsets in a vCPU's data area (qwords). */
#define D_IRQ_LINE	0x00	/* vector 0x40 taken */
#define D_IRQFD		0x08	/* vector 0x41 taken */
#define D_MSI		0x10	/* vector 0x42 taken */
#define D_SEEN_P	0x18	/* last value read at SLOT_P_GPA (0: unbacked) */
#define D_SEEN_Q	0x20	/* last value read at SLOT_Q_GPA */
#define D_LAST		0x28	/* largest generation seen */
#define D_ORDER_ERR	0x30	/* generations seen out of order */
#define D_LOOPS		0x38	/* polls */
#define D_OTHER		0x40	/* any other vector */
#define D_READY		0x48	/* 1 once the LAPIC is enabled */
#define D_IDLE		0x50	/* 1 from the end of a poll to the next interrupt */
#define D_ROUTED	0x60	/* 4 qwords: vectors 0x50 + k taken (k < 4) */
#define D_IPI		0x80	/* vector 0x44 taken (from the previous vCPU) */

#define VEC_IRQ_LINE	0x40
#define VEC_IRQFD	0x41
#define VEC_MSI		0x42
#define VEC_IPI		0x44
#define VEC_ROUTED	0x50	/* + k: the MSI route of vCPU k's irqfd */

#endif
