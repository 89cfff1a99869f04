// SPDX-License-Identifier: GPL-2.0
/*
 * kvmng-smp, the VM side: the VM with its in-kernel irqchip and memory,
 * the IOAPIC, the GSI routing and the irqfds, the data slot's
 * create/move/delete sequence, and the interrupts the main thread
 * injects. Every KVM call is
 * a plain ioctl(), as a VMM makes it.
 */
#include "smp.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

volatile uint64_t *guest_data(struct vm *v, int i)
{
	return (volatile uint64_t *)(v->low + DATA_GPA + (uint64_t)i * DATA_STRIDE);
}

static void put64(struct vm *v, uint64_t gpa, uint64_t val)
{
	memcpy(v->low + gpa, &val, 8);
}

static int write_guest(struct vm *v)
{
	v->guest_size = (uint64_t)(smp_guest_end - smp_guest_start);
	size_t tramp_size = (size_t)(smp_tramp_end - smp_tramp_start);
	if (v->guest_size > TRAMP_GPA - LOAD_GPA || tramp_size > IDT_GPA - TRAMP_GPA) {
		FAIL("guest code %#llx bytes, trampoline %#zx: past their areas (layout.h)",
		     (unsigned long long)v->guest_size, tramp_size);
		return -1;
	}
	memcpy(v->low + LOAD_GPA, smp_guest_start, v->guest_size);

	/* IDT: 64-bit interrupt gates, selector 0x08. */
	for (int vec = 0; vec < 256; vec++) {
		const uint8_t *h = vec < 32 ? smp_guest_fatal : smp_guest_other;
		if (vec == VEC_IRQ_LINE)
			h = smp_guest_irq_line;
		else if (vec == VEC_IRQFD)
			h = smp_guest_irqfd;
		else if (vec == VEC_MSI)
			h = smp_guest_msi;
		else if (vec == VEC_IPI)
			h = smp_guest_ipi;
		else if (vec >= VEC_ROUTED && vec < VEC_ROUTED + 4)
			h = smp_guest_routed + 16 * (vec - VEC_ROUTED);
		uint64_t off = LOAD_GPA + (uint64_t)(h - smp_guest_start);
		uint64_t lo = (off & 0xffff) | (0x08ull << 16) | (0x8eull << 40) |
			      ((off >> 16) & 0xffff) << 48;
		put64(v, IDT_GPA + vec * 16, lo);
		put64(v, IDT_GPA + vec * 16 + 8, off >> 32);
	}
	/* The first 4 GiB identity-mapped with 2 MiB pages. */
	put64(v, PML4_GPA, PDPT_GPA | 3);
	for (uint64_t j = 0; j < 4; j++) {
		put64(v, PDPT_GPA + j * 8, (PD_GPA + j * 0x1000) | 3);
		for (uint64_t i = 0; i < 512; i++)
			put64(v, PD_GPA + j * 0x1000 + i * 8, ((j * 512 + i) << 21) | 0x83);
	}
	put64(v, GDT_GPA + 8, 0x00AF9B000000FFFFull);
	put64(v, GDT_GPA + 16, 0x00CF93000000FFFFull);
	put64(v, GDT_GPA + 24, 0x00CF9B000000FFFFull);
	uint16_t gdt_limit = 31, idt_limit = 256 * 16 - 1;
	uint64_t gdt_base = GDT_GPA, idt_base = IDT_GPA;
	memcpy(v->low + GDTR_GPA, &gdt_limit, 2);
	memcpy(v->low + GDTR_GPA + 2, &gdt_base, 8);
	memcpy(v->low + IDTR_GPA, &idt_limit, 2);
	memcpy(v->low + IDTR_GPA + 2, &idt_base, 8);
	memcpy(v->low + TRAMP_GPA, smp_tramp_start, tramp_size);
	uint32_t ncpus = (uint32_t)v->nvcpus;
	memcpy(v->low + NCPUS_GPA, &ncpus, 4);
	return 0;
}

/* IOAPIC pins GSI_LINE + i and GSI_IRQFD + i: edge, fixed, physical
 * destination APIC ID i (the vCPU id), unmasked. */
static int program_ioapic(struct vm *v)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };

	if (ioctl(v->fd, KVM_GET_IRQCHIP, &chip)) {
		FAIL("KVM_GET_IRQCHIP (IOAPIC): %s", strerror(errno));
		return -1;
	}
	for (int i = 0; i < v->nvcpus; i++) {
		int pins[2] = { GSI_LINE + i, GSI_IRQFD + i };
		int vecs[2] = { VEC_IRQ_LINE, VEC_IRQFD };
		for (int k = 0; k < 2; k++) {
			chip.chip.ioapic.redirtbl[pins[k]].bits = 0;
			chip.chip.ioapic.redirtbl[pins[k]].fields.vector = vecs[k];
			chip.chip.ioapic.redirtbl[pins[k]].fields.dest_id = i;
		}
	}
	if (ioctl(v->fd, KVM_SET_IRQCHIP, &chip)) {
		FAIL("KVM_SET_IRQCHIP (IOAPIC): %s", strerror(errno));
		return -1;
	}
	return 0;
}

int vm_setup(struct vm *v)
{
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0) {
		FAIL("open /dev/kvm: %s", strerror(errno));
		return -1;
	}
	v->fd = ioctl(v->kvm, KVM_CREATE_VM, 0);
	if (v->fd < 0) {
		FAIL("KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	long sz = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (long)sizeof(struct kvm_run)) {
		FAIL("KVM_GET_VCPU_MMAP_SIZE: %ld (%s)", sz, strerror(errno));
		return -1;
	}
	v->run_size = sz;
	/* QEMU asks /dev/kvm, after KVM_CREATE_VM. */
	if (v->variant == V_SIGMASK && ioctl(v->kvm, KVM_CHECK_EXTENSION, KVM_CAP_IMMEDIATE_EXIT) <= 0) {
		FAIL("KVM_CAP_IMMEDIATE_EXIT missing");
		return -1;
	}
	/* The APs switch to long mode themselves: KVM lets a guest set
	 * EFER.LME only with long mode in its CPUID. */
	int nent = 256;
	v->cpuid = calloc(1, sizeof(*v->cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
	v->cpuid->nent = nent;
	if (ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, v->cpuid)) {
		FAIL("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		return -1;
	}
	if (ioctl(v->fd, KVM_CREATE_IRQCHIP, 0)) {
		FAIL("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -1;
	}
	v->low = mmap(NULL, LOW_MEM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	for (int b = 0; b < 2; b++)
		v->buf[b] = mmap(NULL, DATA_SLOT_SIZE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v->low == MAP_FAILED || v->buf[0] == MAP_FAILED || v->buf[1] == MAP_FAILED) {
		FAIL("mmap guest memory: %s", strerror(errno));
		return -1;
	}
	if (write_guest(v))
		return -1;
	struct kvm_userspace_memory_region r = {
		.slot = 0, .memory_size = LOW_MEM, .userspace_addr = (uintptr_t)v->low,
	};
	if (ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r)) {
		FAIL("slot 0: %s", strerror(errno));
		return -1;
	}
	if (program_ioapic(v) || set_routing(v, 0))
		return -1;
	for (int i = 0; i < v->nvcpus; i++) {
		v->irqfd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		struct kvm_irqfd irqfd = { .fd = v->irqfd[i], .gsi = GSI_IRQFD + i };
		if (v->irqfd[i] < 0 || ioctl(v->fd, KVM_IRQFD, &irqfd)) {
			FAIL("KVM_IRQFD gsi %d: %s", GSI_IRQFD + i, strerror(errno));
			return -1;
		}
		v->msi_irqfd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		irqfd = (struct kvm_irqfd){ .fd = v->msi_irqfd[i], .gsi = GSI_MSI + i };
		if (v->msi_irqfd[i] < 0 || ioctl(v->fd, KVM_IRQFD, &irqfd)) {
			FAIL("KVM_IRQFD gsi %d (MSI route): %s", GSI_MSI + i, strerror(errno));
			return -1;
		}
	}
	return 0;
}

void vm_teardown(struct vm *v)
{
	for (int i = 0; i < v->nvcpus; i++) {
		struct kvm_irqfd irqfd = {
			.fd = v->irqfd[i], .gsi = GSI_IRQFD + i, .flags = KVM_IRQFD_FLAG_DEASSIGN,
		};
		if (ioctl(v->fd, KVM_IRQFD, &irqfd))
			FAIL("KVM_IRQFD deassign gsi %d: %s", GSI_IRQFD + i, strerror(errno));
		close(v->irqfd[i]);
		irqfd = (struct kvm_irqfd){
			.fd = v->msi_irqfd[i], .gsi = GSI_MSI + i, .flags = KVM_IRQFD_FLAG_DEASSIGN,
		};
		if (ioctl(v->fd, KVM_IRQFD, &irqfd))
			FAIL("KVM_IRQFD deassign gsi %d: %s", GSI_MSI + i, strerror(errno));
		close(v->msi_irqfd[i]);
	}
	for (int i = 0; i < v->nvcpus; i++) {
		struct kvm_run *run = atomic_load(&v->vcpu[i].run);
		if (run)
			munmap(run, v->run_size);
		if (v->vcpu[i].fd >= 0)
			close(v->vcpu[i].fd);
	}
	close(v->fd);
	close(v->kvm);
	free(v->cpuid);
	munmap(v->low, LOW_MEM);
	munmap(v->buf[0], DATA_SLOT_SIZE);
	munmap(v->buf[1], DATA_SLOT_SIZE);
}

/*
 * The data slot (slot 1) goes through create at P, move to Q, move back to
 * P, delete, with the two backings taking turns at each create (the one
 * not in use keeps an older generation: a stale mapping shows it). Before
 * each operation that leaves the slot visible the backing gets a new,
 * larger generation; the guest must then read it at the new place, and 0
 * (unbacked) at the other.
 */
int slot_op(struct vm *v, uint64_t *p, uint64_t *q)
{
	int step = v->slot_ops % 4;
	uint8_t *buf = v->buf[(v->slot_ops / 4) % 2];
	struct kvm_userspace_memory_region r = {
		.slot = 1, .memory_size = DATA_SLOT_SIZE, .userspace_addr = (uintptr_t)buf,
	};
	static const char *const what[4] = { "create at P", "move to Q", "move to P", "delete" };

	*p = *q = 0;
	if (step < 3) {
		uint64_t g = ++v->gen;
		__atomic_store_n((uint64_t *)buf, g, __ATOMIC_SEQ_CST);
		r.guest_phys_addr = step == 1 ? SLOT_Q_GPA : SLOT_P_GPA;
		*(step == 1 ? q : p) = g;
	} else {
		r.guest_phys_addr = SLOT_P_GPA;
		r.memory_size = 0;
	}
	double t0 = now();
	int ret = ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &r);
	double dt = now() - t0;
	v->slot_ops++;
	v->slot_sum_s += dt;
	if (dt > v->slot_max_s)
		v->slot_max_s = dt;
	if (ret) {
		FAIL("data slot %s: %s", what[step], strerror(errno));
		return -1;
	}
	/* A slot change is one KVM_SET_USER_MEMORY_REGION: KVM applies it
	 * at once for running vCPUs. Whatever holds it up (the shim waiting
	 * 2 s for vCPUs that block its signal did, at every change) stalls an
	 * SMP VMM's boot, which makes hundreds of them. On this loaded 2-core
	 * host a change sometimes takes up to 0.9 s natively (the main
	 * thread or a vCPU thread waiting for a CPU), so one stall is noise:
	 * more than STALLS_ALLOWED fail the run, and end it at once. */
	if (dt >= STALL_S) {
		v->stalls++;
		fprintf(stderr, "kvmng-smp: data slot %s (op %d) took %.2f s\n", what[step],
			v->slot_ops, dt);
		if (v->stalls == STALLS_ALLOWED + 1) {
			FAIL("%d data slot changes took %.1f s or more, with %d vCPU threads running: a stall, not noise",
			     v->stalls, STALL_S, v->nvcpus);
			atomic_store(&aborted, 1);
		}
	}
	if (dt > STALL_HARD_S)
		FAIL("data slot %s (op %d) took %.2f s with %d vCPU threads running", what[step],
		     v->slot_ops, dt, v->nvcpus);
	return 0;
}

/*
 * The whole table, as QEMU commits it: KVM's default routes of GSIs 0-23
 * (the PIC for 0-15, the IOAPIC for 0-23), then the MSI routes.
 */
int set_routing(struct vm *v, int shift)
{
	struct {
		struct kvm_irq_routing hdr;
		struct kvm_irq_routing_entry e[16 + 24 + MAX_VCPUS];
	} t;
	unsigned n = 0;

	memset(&t, 0, sizeof(t));
	for (unsigned gsi = 0; gsi < 16; gsi++) {
		t.e[n].gsi = gsi;
		t.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		t.e[n].u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
		t.e[n++].u.irqchip.pin = gsi % 8;
	}
	for (unsigned gsi = 0; gsi < 24; gsi++) {
		t.e[n].gsi = gsi;
		t.e[n].type = KVM_IRQ_ROUTING_IRQCHIP;
		t.e[n].u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
		t.e[n++].u.irqchip.pin = gsi;
	}
	for (int i = 0; i < v->nvcpus; i++) {
		t.e[n].gsi = GSI_MSI + i;
		t.e[n].type = KVM_IRQ_ROUTING_MSI;
		t.e[n].u.msi.address_lo = LAPIC_GPA | ((uint32_t)((i + shift) % v->nvcpus) << 12);
		t.e[n++].u.msi.data = VEC_ROUTED + i;
	}
	t.hdr.nr = n;
	v->routings++;
	if (ioctl(v->fd, KVM_SET_GSI_ROUTING, &t)) {
		FAIL("KVM_SET_GSI_ROUTING (%u routes): %s", n, strerror(errno));
		return -1;
	}
	return 0;
}

void inject(struct vm *v)
{
	for (int i = 0; i < v->nvcpus; i++) {
		struct kvm_irq_level line = { .irq = GSI_LINE + i, .level = 1 };
		if (ioctl(v->fd, KVM_IRQ_LINE, &line))
			FAIL("KVM_IRQ_LINE gsi %u 1: %s", line.irq, strerror(errno));
		line.level = 0;
		if (ioctl(v->fd, KVM_IRQ_LINE, &line))
			FAIL("KVM_IRQ_LINE gsi %u 0: %s", line.irq, strerror(errno));
		v->irq_line_calls += 2;

		uint64_t one = 1;
		if (write(v->irqfd[i], &one, 8) != 8)
			FAIL("irqfd %d write: %s", i, strerror(errno));
		if (write(v->msi_irqfd[i], &one, 8) != 8)
			FAIL("MSI irqfd %d write: %s", i, strerror(errno));
		v->irqfd_writes += 2;

		struct kvm_msi msi = {
			.address_lo = LAPIC_GPA | ((uint32_t)i << 12), .data = VEC_MSI,
		};
		int r = ioctl(v->fd, KVM_SIGNAL_MSI, &msi);
		if (r < 0)
			FAIL("KVM_SIGNAL_MSI to APIC %d: %s", i, strerror(errno));
		else
			v->msi_delivered += r;
		v->msi_calls++;
	}
}
