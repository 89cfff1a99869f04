// SPDX-License-Identifier: GPL-2.0
/* Guests run entirely through the kvmng syscalls (PIO, MMIO, HLT, state
 * round trip), interrupts, kvmng_control in its three scopes, and
 * kvmng_run's KVM_RUN semantics (immediate_exit). */
#include "harness.h"

#include <pthread.h>
#include <sys/ioctl.h>

TEST(guest_pio_and_hlt)
{
	struct vm v;
	const char *text = "kvmng real mode\n";
	char seen[32] = { 0 };
	int n = 0, reason;

	vm_setup(&v);
	vm_load_real(&v, guest_real_pio, guest_real_pio_end - guest_real_pio);
	for (;;) {
		reason = run_once(&v);
		if (reason != KVM_EXIT_IO || v.run->io.port != GUEST_CONSOLE_PORT)
			break;
		CHECK(v.run->io.direction == KVM_EXIT_IO_OUT && v.run->io.size == 1 &&
		      v.run->io.count == 1, "console OUT is one byte");
		if (n < 31)
			seen[n++] = *((char *)v.run + v.run->io.data_offset);
	}
	CHECK(!strcmp(seen, text), "console text \"%s\"", seen);
	CHECK(reason == KVM_EXIT_IO && v.run->io.port == GUEST_REPORT_PORT &&
	      v.run->io.size == 4, "REPORT OUT (exit %d)", reason);
	uint32_t value;
	memcpy(&value, (char *)v.run + v.run->io.data_offset, 4);
	CHECK(value == 0x600DF00D, "reported %#x", value);
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_HLT, "HLT exit (%d)", reason);
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_HLT, "HLT again after the jmp (%d)", reason);
}

TEST(guest_mmio_read_and_write)
{
	struct vm v;
	int reason;

	vm_setup(&v);
	vm_load_real(&v, guest_real_mmio, guest_real_mmio_end - guest_real_mmio);
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_MMIO, "MMIO exit (%d)", reason);
	CHECK(v.run->mmio.phys_addr == GUEST_MMIO_REAL && v.run->mmio.len == 2 &&
	      v.run->mmio.is_write, "16-bit write at 0xD0000 (%#llx len %u w %u)",
	      (unsigned long long)v.run->mmio.phys_addr, v.run->mmio.len, v.run->mmio.is_write);
	uint16_t w;
	memcpy(&w, v.run->mmio.data, 2);
	CHECK(w == 0x1234, "wrote %#x", w);
	reason = run_once(&v);
	CHECK(reason == KVM_EXIT_MMIO && !v.run->mmio.is_write &&
	      v.run->mmio.phys_addr == GUEST_MMIO_REAL + 8 && v.run->mmio.len == 4,
	      "32-bit read at 0xD0008 (exit %d)", reason);
	uint32_t answer = 0xCAFEBABE;
	memcpy(v.run->mmio.data, &answer, 4);
	/* The read completes when the vCPU runs again. */
	reason = run_once(&v);
	uint32_t reported;
	memcpy(&reported, (char *)v.run + v.run->io.data_offset, 4);
	CHECK(reason == KVM_EXIT_IO && v.run->io.port == GUEST_REPORT_PORT &&
	      reported == answer, "the guest got the MMIO data (%#x)", reported);
	CHECK(run_once(&v) == KVM_EXIT_HLT, "HLT");
}

TEST(guest_state_round_trip_across_runs)
{
	struct vm v;
	struct kvm_regs regs;
	struct kvmng_state_entry get = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	struct kvmng_state_entry set = entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs));

	vm_setup(&v);
	vm_load_real(&v, guest_pio_loop, guest_pio_loop_end - guest_pio_loop);
	/* pio_loop: out 0x10, eax; inc eax; forever. */
	for (uint32_t i = 0; i < 3; i++) {
		CHECK(run_once(&v) == KVM_EXIT_IO, "OUT exit %u", i);
		uint32_t value;
		memcpy(&value, (char *)v.run + v.run->io.data_offset, 4);
		CHECK(value == i, "OUT %u (got %u)", i, value);
	}
	/* Read RAX, move it on, write it back: the guest continues from it. */
	CHECK_RET(kvmng_vcpu_state(&get, 1, 0), 1);
	CHECK((uint32_t)regs.rax == 2, "RAX after the third OUT is 2 (%llu)",
	      (unsigned long long)regs.rax);
	regs.rax = 1000;
	CHECK_RET(kvmng_vcpu_state(&set, 1, 0), 1);
	CHECK(run_once(&v) == KVM_EXIT_IO, "OUT exit after SET");
	uint32_t value;
	memcpy(&value, (char *)v.run + v.run->io.data_offset, 4);
	/* RIP was past the OUT: inc, jmp, OUT of 1001. */
	CHECK(value == 1001, "the guest continued from the state set (OUT %u)", value);
}

TEST(run_keeps_kvm_run_semantics)
{
	struct vm v;

	vm_setup(&v);
	vm_load_real(&v, guest_pio_loop, guest_pio_loop_end - guest_pio_loop);
	v.run->immediate_exit = 1;
	CHECK_ERR(kvmng_run(0), EINTR);
	v.run->immediate_exit = 0;
	CHECK(run_once(&v) == KVM_EXIT_IO, "runs once immediate_exit is cleared");
	/* KVM_RUN through the control call is the same run. */
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VCPU, KVM_RUN, 0, 0), 0);
	CHECK(v.run->exit_reason == KVM_EXIT_IO, "control(VCPU, KVM_RUN) exit %u",
	      v.run->exit_reason);
}

static void *run_elsewhere(void *p)
{
	struct vm *v = p;
	CHECK_RET(kvmng_bind_vcpu(v->vcpu, 0), 0);
	CHECK(run_once(v) == KVM_EXIT_IO, "the vCPU runs on the thread that bound it");
	return NULL;
}

TEST(a_vcpu_moves_between_threads)
{
	struct vm v;
	pthread_t t;

	vm_setup(&v);
	vm_load_real(&v, guest_pio_loop, guest_pio_loop_end - guest_pio_loop);
	CHECK(run_once(&v) == KVM_EXIT_IO, "runs on the creator");
	CHECK_RET(kvmng_bind_vcpu(KVMNG_UNBIND, 0), 0);
	pthread_create(&t, NULL, run_elsewhere, &v);
	pthread_join(t, NULL);
	/* The thread exited: the vCPU is free to bind here again. */
	CHECK_RET(kvmng_bind_vcpu(v.vcpu, 0), 0);
	CHECK(run_once(&v) == KVM_EXIT_IO, "runs on the creator again");
}

TEST(irq_kinds)
{
	struct vm v;

	vm_setup(&v);
	/* No in-kernel irqchip: KVM_IRQ_LINE answers ENXIO; KVM_INTERRUPT
	 * queues a vector; a vector >= 256 is EINVAL. */
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_LINE, 1, 1, 0), ENXIO);
	CHECK_RET(kvmng_irq(KVMNG_IRQ_INTERRUPT, 0x20, 0, 0), 0);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_INTERRUPT, 256, 0, 0), EINVAL);
	CHECK_RET(kvmng_irq(KVMNG_IRQ_NMI, 0, 0, 0), 0);
	/* KVM_SMI: the ioctl's answer, whatever this host's KVM gives. */
	errno = 0;
	int ri = kioctl(v.vcpu, KVM_SMI, 0);
	int ei = ri < 0 ? errno : 0;
	errno = 0;
	int rk = kvmng_irq(KVMNG_IRQ_SMI, 0, 0, 0);
	int ek = rk < 0 ? errno : 0;
	CHECK(ri == rk && ei == ek, "SMI: ioctl %d/%s, kvmng %d/%s", ri, errname(ei), rk,
	      errname(ek));
}

TEST(irq_line_with_an_in_kernel_irqchip)
{
	int kvm = open_kvm();
	int vm = kvmng_create_vm(kvm, 0, 0);
	REQUIRE(vm >= 0, "create_vm: %s", errname(errno));
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VM, KVM_CREATE_IRQCHIP, 0, 0), 0);
	CHECK(kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND) >= 0, "create_vcpu: %s",
	      errname(errno));
	CHECK_RET(kvmng_irq(KVMNG_IRQ_LINE, 1, 1, 0), 0);
	CHECK_RET(kvmng_irq(KVMNG_IRQ_LINE, 1, 0, 0), 0);
	/* With an in-kernel LAPIC, KVM_INTERRUPT answers ENXIO. */
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_INTERRUPT, 0x20, 0, 0), ENXIO);
	/* The LAPIC state kind works now. */
	struct kvm_lapic_state lapic;
	struct kvmng_state_entry e = entry(KVMNG_STATE_LAPIC, KVMNG_STATE_GET, &lapic, sizeof(lapic));
	CHECK_RET(kvmng_vcpu_state(&e, 1, 0), 1);
}

TEST(control_scopes)
{
	struct vm v;
	struct kvm_regs regs;

	vm_setup(&v);
	CHECK_RET(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0), KVM_API_VERSION);
	CHECK_RET(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY, 0),
		  kioctl(v.kvm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VM, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY, 0),
		  kioctl(v.vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY));
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_REGS, (unsigned long)&regs, 0), 0);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_REGS, 8, 0), EFAULT);
	/* A command the scope does not know: the ioctl's ENOTTY. */
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VM, KVM_GET_REGS, (unsigned long)&regs, 0), ENOTTY);
	/* (x86 vCPU fds answer EINVAL for commands they do not know.) */
	errno = 0;
	int ri = kioctl(v.vcpu, KVM_CREATE_VCPU, 1);
	int ei = errno;
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VCPU, KVM_CREATE_VCPU, 1, 0), ei);
	CHECK(ri == -1, "the ioctl fails too");
	/* A vCPU made through VM-scope control is not bound... */
	long fd = kvmng_control(KVMNG_SCOPE_VM, KVM_CREATE_VCPU, 1, 0);
	CHECK(fd >= 0, "control(VM, KVM_CREATE_VCPU): %s", errname(errno));
	/* ...and can be bound by another thread, or by this one. */
	CHECK_RET(kvmng_bind_vcpu(fd, 0), 0);
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_REGS, (unsigned long)&regs, 0), 0);
	/* Returns new fds as the ioctl does. */
	long stats = kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_STATS_FD, 0, 0);
	CHECK(stats >= 0, "control(VCPU, KVM_GET_STATS_FD): %s", errname(errno));
}
