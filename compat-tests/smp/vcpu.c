// SPDX-License-Identifier: GPL-2.0
/*
 * kvmng-smp, the vCPU threads, made the way QEMU makes them: the thread
 * starts with every signal blocked (qemu_thread_create), creates its vCPU
 * and sets up its signals (kvm_init_cpu_signals: SIG_IPI and SIGBUS let
 * through with pthread_sigmask when KVM has KVM_CAP_IMMEDIATE_EXIT, else
 * SIG_IPI through KVM_SET_SIGNAL_MASK only), sets its registers, and runs.
 * A pause request is a kick (immediate_exit = 1 and SIG_IPI, or SIG_IPI
 * alone): KVM_RUN answers EINTR, the thread reads its state as QEMU's
 * cpu_synchronize_state would, parks on the VM's condition variable and
 * goes on when the main thread resumes it. While it is parked the main
 * thread reads its registers too, on the same fd (under the shim a vCPU
 * ioctl from a thread that does not hold the vCPU: a documented
 * fallback), and must find what the vCPU's own thread read.
 */
#include "smp.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

/* QEMU's kvm_eat_signals: SIG_IPI left pending in a thread that blocks
 * it would end the next KVM_RUN at once. */
static void eat_signals(void)
{
	static const struct timespec zero;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIG_IPI);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
}

static int init_signals(struct vcpu *c)
{
	sigset_t set;

	pthread_sigmask(SIG_BLOCK, NULL, &set);
	sigdelset(&set, SIGBUS);
	pthread_sigmask(SIG_SETMASK, &set, NULL);
	sigdelset(&set, SIG_IPI);
	if (c->vm->variant == V_SIGMASK)
		return pthread_sigmask(SIG_SETMASK, &set, NULL) ? -1 : 0;

	struct {
		struct kvm_signal_mask hdr;
		uint8_t sigset[8];
	} mask = { .hdr.len = 8 };
	memcpy(mask.sigset, &set, 8);
	if (ioctl(c->fd, KVM_SET_SIGNAL_MASK, &mask)) {
		FAIL("vcpu %d: KVM_SET_SIGNAL_MASK: %s", c->id, strerror(errno));
		return -1;
	}
	return 0;
}

static int init_regs(struct vcpu *c)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	if (ioctl(c->fd, KVM_GET_SREGS, &s)) {
		FAIL("vcpu %d: KVM_GET_SREGS: %s", c->id, strerror(errno));
		return -1;
	}
	struct kvm_segment code = {
		.limit = 0xffffffff, .selector = 0x08, .type = 0xb, .present = 1,
		.s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = {
		.limit = 0xffffffff, .selector = 0x10, .type = 0x3, .present = 1,
		.s = 1, .db = 1, .g = 1,
	};
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.cr0 = 0x80050033;	/* PG WP NE ET MP PE */
	s.cr3 = PML4_GPA;
	s.cr4 |= 1 << 5;	/* PAE */
	s.efer |= 0x500;	/* LME LMA */
	s.gdt.base = GDT_GPA;
	s.gdt.limit = 23;
	s.idt.base = IDT_GPA;
	s.idt.limit = 256 * 16 - 1;
	if (ioctl(c->fd, KVM_SET_SREGS, &s)) {
		FAIL("vcpu %d: KVM_SET_SREGS: %s", c->id, strerror(errno));
		return -1;
	}
	memset(&r, 0, sizeof(r));
	r.rip = LOAD_GPA;
	r.rsp = STACKS_GPA + (uint64_t)(c->id + 1) * 0x1000;
	r.rbx = DATA_GPA + (uint64_t)c->id * DATA_STRIDE;
	r.rflags = 2;
	if (ioctl(c->fd, KVM_SET_REGS, &r)) {
		FAIL("vcpu %d: KVM_SET_REGS: %s", c->id, strerror(errno));
		return -1;
	}
	return 0;
}

/* What a paused vCPU must look like: in the guest's code, on its own
 * stack, its data area in RBX, still in long mode, runnable or halted
 * (idle in HLT). */
static void check_state(struct vcpu *c)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	struct kvm_mp_state mp;
	uint64_t stack = STACKS_GPA + (uint64_t)c->id * 0x1000;

	if (ioctl(c->fd, KVM_GET_REGS, &r) || ioctl(c->fd, KVM_GET_SREGS, &s) ||
	    ioctl(c->fd, KVM_GET_MP_STATE, &mp)) {
		FAIL("vcpu %d: state while paused: %s", c->id, strerror(errno));
		memset(&c->parked_regs, 0, sizeof(c->parked_regs));
		c->state_bad++;
		return;
	}
	if (r.rip < LOAD_GPA || r.rip >= LOAD_GPA + c->vm->guest_size ||
	    r.rsp <= stack || r.rsp > stack + 0x1000 ||
	    r.rbx != DATA_GPA + (uint64_t)c->id * DATA_STRIDE || !(s.efer & 0x400) ||
	    (mp.mp_state != KVM_MP_STATE_RUNNABLE && mp.mp_state != KVM_MP_STATE_HALTED)) {
		FAIL("vcpu %d: paused with rip %#llx rsp %#llx rbx %#llx efer %#llx mp_state %u",
		     c->id, (unsigned long long)r.rip, (unsigned long long)r.rsp,
		     (unsigned long long)r.rbx, (unsigned long long)s.efer, mp.mp_state);
		memset(&c->parked_regs, 0, sizeof(c->parked_regs));
		c->state_bad++;
		return;
	}
	c->parked_regs = r;
	c->state_ok++;
}

/* Parks until resumed (QEMU's qemu_wait_io_event on halt_cond). */
static void park(struct vcpu *c)
{
	struct vm *v = c->vm;
	struct kvm_run *run = atomic_load(&c->run);

	check_state(c);
	pthread_mutex_lock(&v->lock);
	c->parked_gen = atomic_load(&v->pause_gen);
	c->paused++;
	pthread_cond_broadcast(&v->cond);
	while (v->resume_gen < c->parked_gen && !atomic_load(&v->stop))
		pthread_cond_wait(&v->cond, &v->lock);
	pthread_mutex_unlock(&v->lock);
	c->resumed++;
	/* The kick of this pause may have set it after the thread saw the
	 * request; the main thread writes it only while pausing. */
	__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
}

void vcpu_kick(struct vcpu *c)
{
	struct kvm_run *run = atomic_load(&c->run);

	if (c->vm->variant == V_SIGMASK && run)
		__atomic_store_n(&run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(c->thread, SIG_IPI);
}

static int handle_exit(struct vcpu *c, struct kvm_run *run)
{
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == IRQ_PORT &&
		    run->io.size == 1 && run->io.count == 1 && data[0] < 24) {
			c->port_exits[data[0]]++;
			return 0;
		}
		if (run->io.port == FAIL_PORT)
			FAIL("vcpu %d: the guest took an exception (OUT %#x = %#x)", c->id,
			     run->io.port, *(uint32_t *)data);
		else
			FAIL("vcpu %d: unexpected port I/O: port %#x dir %u size %u", c->id,
			     run->io.port, run->io.direction, run->io.size);
		return -1;
	}
	case KVM_EXIT_MMIO:
		/* The data slot is absent where the guest polls: it reads 0. */
		if (!run->mmio.is_write && run->mmio.len == 8 &&
		    (run->mmio.phys_addr == SLOT_P_GPA || run->mmio.phys_addr == SLOT_Q_GPA)) {
			memset(run->mmio.data, 0, 8);
			c->mmio_exits++;
			return 0;
		}
		FAIL("vcpu %d: unexpected MMIO %s %#llx len %u", c->id,
		     run->mmio.is_write ? "write" : "read",
		     (unsigned long long)run->mmio.phys_addr, run->mmio.len);
		return -1;
	default:
		FAIL("vcpu %d: unexpected exit reason %u", c->id, run->exit_reason);
		return -1;
	}
}

void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	struct vm *v = c->vm;

	c->fd = ioctl(v->fd, KVM_CREATE_VCPU, c->id);
	if (c->fd < 0) {
		FAIL("KVM_CREATE_VCPU %d: %s", c->id, strerror(errno));
		goto out;
	}
	struct kvm_run *run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (run == MAP_FAILED) {
		FAIL("vcpu %d: mmap kvm_run: %s", c->id, strerror(errno));
		goto out;
	}
	if (ioctl(c->fd, KVM_SET_CPUID2, v->cpuid)) {
		FAIL("vcpu %d: KVM_SET_CPUID2: %s", c->id, strerror(errno));
		goto out;
	}
	/* The BSP is put in long mode; the APs stay in KVM_RUN waiting
	 * for the BSP's INIT and SIPI (KVM_MP_STATE_UNINITIALIZED). */
	if (init_signals(c) || (c->id == 0 && init_regs(c)))
		goto out;
	atomic_store(&c->run, run);
	atomic_store(&c->up, 1);
	pthread_mutex_lock(&v->lock);
	pthread_cond_broadcast(&v->cond);
	while (!v->started && !atomic_load(&v->stop) && !atomic_load(&aborted))
		pthread_cond_wait(&v->cond, &v->lock);
	pthread_mutex_unlock(&v->lock);
	for (;;) {
		if (atomic_load(&v->stop) || atomic_load(&aborted))
			break;
		if (atomic_load(&v->pause_gen) != c->parked_gen) {
			park(c);
			continue;
		}
		int r = ioctl(c->fd, KVM_RUN, 0);
		int err = errno;
		if (v->variant == V_KVM_SIGMASK)
			eat_signals();
		if (r < 0 && err == EAGAIN) {
			/* An AP woken in KVM_RUN by INIT or SIPI; QEMU
			 * enters again. */
			c->eagain++;
			continue;
		}
		if (r < 0 && err == EINTR) {
			if (v->variant == V_SIGMASK)
				__atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			c->eintr++;
			if (atomic_load(&v->pause_gen) == c->parked_gen && !atomic_load(&v->stop))
				c->eintr_unasked++;
			continue;
		}
		if (r < 0) {
			FAIL("vcpu %d: KVM_RUN: %s", c->id, strerror(err));
			break;
		}
		if (handle_exit(c, run))
			break;
	}
out:
	if (!atomic_load(&v->stop))
		atomic_store(&aborted, 1);
	atomic_store(&c->up, 1);
	pthread_mutex_lock(&v->lock);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
	return NULL;
}
