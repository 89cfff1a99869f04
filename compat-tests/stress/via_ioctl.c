// SPDX-License-Identifier: GPL-2.0
/*
 * kvmng-stress, the legacy ioctl scenarios: run under libkvmshim.so they go
 * through the shim's translation (docs/shim.md). The maximum number of
 * vCPUs; threads hammering state operations while a VM thread changes the
 * memory map; signals during KVM_RUN.
 */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

struct ivm {
	int kvm, vm;
	uint8_t *mem;
};

static int ivm_open(struct ivm *v)
{
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0) {
		FAIL("open /dev/kvm: %s", strerror(errno));
		return -1;
	}
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	if (v->vm < 0) {
		FAIL("KVM_CREATE_VM: %s", strerror(errno));
		close(v->kvm);
		return -1;
	}
	v->mem = guest_memory();
	struct kvm_userspace_memory_region r = {
		.slot = 0, .memory_size = GUEST_MEM, .userspace_addr = (uintptr_t)v->mem,
	};
	if (!v->mem || ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &r)) {
		FAIL("guest memory: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void ivm_close(struct ivm *v)
{
	close(v->vm);
	close(v->kvm);
	munmap(v->mem, GUEST_MEM);
}

struct ivcpu {
	int fd;
	struct kvm_run *run;
};

static int ivcpu_create(struct ivm *v, int id, uint64_t rip, struct ivcpu *c)
{
	c->fd = ioctl(v->vm, KVM_CREATE_VCPU, id);
	if (c->fd < 0)
		return -1;
	c->run = mmap(NULL, run_size(v->kvm), PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
	if (c->run == MAP_FAILED) {
		FAIL("mmap kvm_run of vCPU %d: %s", id, strerror(errno));
		close(c->fd);
		return -1;
	}
	if (vcpu_real_mode(c->fd, rip, 1)) {
		FAIL("vCPU %d real mode: %s", id, strerror(errno));
		return -1;
	}
	return 0;
}

static void ivcpu_close(struct ivm *v, struct ivcpu *c)
{
	munmap(c->run, run_size(v->kvm));
	close(c->fd);
}

/* KVM_RUN until an exit that is not EINTR; the exit reason or -1. */
static int run_io(struct ivcpu *c)
{
	for (;;) {
		if (ioctl(c->fd, KVM_RUN, 0) == 0)
			return c->run->exit_reason;
		if (errno != EINTR)
			return -1;
	}
}

/* ---- the maximum number of vCPUs ---- */

struct runner {
	struct ivcpu *c;
	int n, stride, first;
	long ops;
};

static void *run_each(void *p)
{
	struct runner *r = p;

	for (int i = r->first; i < r->n; i += r->stride) {
		int reason = run_io(&r->c[i]);
		if (reason != KVM_EXIT_IO)
			FAIL("vCPU %d: KVM_RUN gave %d (%s)", i, reason, strerror(errno));
		r->ops++;
	}
	return NULL;
}

long sc_max_vcpus(void)
{
	struct ivm v;
	long ops = 0;

	if (ivm_open(&v))
		return 0;
	int max = ioctl(v.vm, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max <= 0) {
		FAIL("KVM_CAP_MAX_VCPUS: %d (%s)", max, strerror(errno));
		ivm_close(&v);
		return 0;
	}
	/* One fd per vCPU: the default limit of 1024 fds is too few. */
	struct rlimit nofile;
	int want = max;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < (rlim_t)max + 256) {
		nofile.rlim_cur = (rlim_t)max + 256;
		if (nofile.rlim_max < nofile.rlim_cur)
			nofile.rlim_max = nofile.rlim_cur;	/* root may raise it */
		if (setrlimit(RLIMIT_NOFILE, &nofile) && getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
			want = (int)nofile.rlim_cur - 64;
			printf("!!! kvmng-stress: max vCPUs: RLIMIT_NOFILE is %d and cannot be raised: only %d of %d vCPUs\n",
			       (int)nofile.rlim_cur, want, max);
		}
	}
	struct ivcpu *c = calloc(max, sizeof(*c));
	int n = 0;
	for (; n < want; n++, ops++)
		if (ivcpu_create(&v, n, CODE_IO_LOOP, &c[n]))
			break;
	if (n != want)
		FAIL("created %d of %d vCPUs (KVM_CAP_MAX_VCPUS %d): %s", n, want, max,
		     strerror(errno));
	/* With all of them made, one more is refused, as the ioctl refuses it. */
	if (n == max) {
		errno = 0;
		int extra = ioctl(v.vm, KVM_CREATE_VCPU, max);
		if (extra >= 0 || errno != EINVAL)
			FAIL("vCPU %d of %d: %d/%s, want EINVAL", max, max, extra, strerror(errno));
		ops++;
	}
	/* Every vCPU runs once, four threads taking turns (each KVM_RUN
	 * moves the thread's binding to the next vCPU). */
	pthread_t t[4];
	struct runner r[4];
	for (int i = 0; i < 4; i++) {
		r[i] = (struct runner){ .c = c, .n = n, .stride = 4, .first = i };
		pthread_create(&t[i], NULL, run_each, &r[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		ops += r[i].ops;
	}
	for (int i = 0; i < n; i++)
		ivcpu_close(&v, &c[i]);
	free(c);
	ivm_close(&v);
	printf("kvmng-stress: max vCPUs: %d created (KVM_CAP_MAX_VCPUS %d) and run%s\n", n, max,
	       n == max ? ", one more refused with EINVAL" : "");
	return ops;
}

/* ---- threads hammering state operations ---- */

struct hammer {
	struct ivm *v;
	int id;
	double until;
	long ops;
};

static void *hammer_vcpu(void *p)
{
	struct hammer *h = p;
	struct ivcpu c;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[2];
	} msrs;

	if (ivcpu_create(h->v, h->id, CODE_IO_LOOP, &c)) {
		FAIL("hammer vCPU %d: %s", h->id, strerror(errno));
		return NULL;
	}
	for (uint64_t i = 1; now() < h->until; i++) {
		int reason = run_io(&c);
		if (reason != KVM_EXIT_IO)
			FAIL("vCPU %d: KVM_RUN gave %d (%s)", h->id, reason, strerror(errno));
		if (ioctl(c.fd, KVM_GET_REGS, &regs))
			FAIL("KVM_GET_REGS: %s", strerror(errno));
		uint64_t mark = ((uint64_t)h->id << 32) | i;
		regs.rbx = mark;
		if (ioctl(c.fd, KVM_SET_REGS, &regs))
			FAIL("KVM_SET_REGS: %s", strerror(errno));
		memset(&regs, 0, sizeof(regs));
		if (ioctl(c.fd, KVM_GET_REGS, &regs) || regs.rbx != mark)
			FAIL("vCPU %d: rbx %#llx after setting %#llx (%s)", h->id,
			     (unsigned long long)regs.rbx, (unsigned long long)mark, strerror(errno));
		if (ioctl(c.fd, KVM_GET_SREGS, &sregs) || sregs.cs.base != 0)
			FAIL("KVM_GET_SREGS: %s", strerror(errno));
		memset(&msrs, 0, sizeof(msrs));
		msrs.hdr.nmsrs = 2;
		msrs.e[0].index = 0x174;	/* SYSENTER_CS */
		msrs.e[1].index = 0x10;		/* TSC */
		if (ioctl(c.fd, KVM_GET_MSRS, &msrs) != 2)
			FAIL("KVM_GET_MSRS: %s", strerror(errno));
		if (ioctl(c.fd, KVM_GET_VCPU_EVENTS, &ev))
			FAIL("KVM_GET_VCPU_EVENTS: %s", strerror(errno));
		if (ioctl(c.fd, KVM_GET_MP_STATE, &mp))
			FAIL("KVM_GET_MP_STATE: %s", strerror(errno));
		h->ops += 9;
	}
	ivcpu_close(h->v, &c);
	return NULL;
}

/* The VM thread: slot 1 added and removed (the shim holds running vCPUs
 * out of guest mode during each change), the clock read. */
static void *hammer_vm(void *p)
{
	struct hammer *h = p;
	uint8_t *extra = mmap(NULL, 0x10000, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct kvm_clock_data clock;

	while (now() < h->until) {
		struct kvm_userspace_memory_region r = {
			.slot = 1, .guest_phys_addr = 0x100000, .memory_size = 0x10000,
			.userspace_addr = (uintptr_t)extra,
		};
		if (ioctl(h->v->vm, KVM_SET_USER_MEMORY_REGION, &r))
			FAIL("add slot 1: %s", strerror(errno));
		r.memory_size = 0;
		if (ioctl(h->v->vm, KVM_SET_USER_MEMORY_REGION, &r))
			FAIL("remove slot 1: %s", strerror(errno));
		if (ioctl(h->v->vm, KVM_GET_CLOCK, &clock))
			FAIL("KVM_GET_CLOCK: %s", strerror(errno));
		if (ioctl(h->v->vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) <= 0)
			FAIL("KVM_CHECK_EXTENSION: %s", strerror(errno));
		h->ops += 4;
		usleep(500);
	}
	munmap(extra, 0x10000);
	return NULL;
}

long sc_hammer(double seconds)
{
	enum { N = 8 };
	struct ivm v;
	pthread_t t[N + 1];
	struct hammer h[N + 1];
	long ops = 0;

	if (ivm_open(&v))
		return 0;
	double until = now() + seconds;
	for (int i = 0; i <= N; i++) {
		h[i] = (struct hammer){ .v = &v, .id = i, .until = until };
		pthread_create(&t[i], NULL, i < N ? hammer_vcpu : hammer_vm, &h[i]);
	}
	for (int i = 0; i <= N; i++) {
		pthread_join(t[i], NULL);
		ops += h[i].ops;
	}
	ivm_close(&v);
	return ops;
}

/* ---- signals during KVM_RUN ---- */

static atomic_long signals_handled;

static void on_usr1(int sig)
{
	(void)sig;
	atomic_fetch_add(&signals_handled, 1);
}

struct spinner {
	struct ivm *v;
	int id;
	atomic_int stop;
	atomic_int ready;
	long eintr;
};

static void *spin_vcpu(void *p)
{
	struct spinner *s = p;
	struct ivcpu c;

	if (ivcpu_create(s->v, s->id, CODE_SPIN, &c)) {
		FAIL("spinner vCPU %d: %s", s->id, strerror(errno));
		atomic_store(&s->ready, 1);
		return NULL;
	}
	atomic_store(&s->ready, 1);
	while (!atomic_load(&s->stop)) {
		int r = ioctl(c.fd, KVM_RUN, 0);
		if (r == 0)
			FAIL("vCPU %d: a spinning guest exited with reason %u", s->id,
			     c.run->exit_reason);
		else if (errno != EINTR)
			FAIL("vCPU %d: KVM_RUN: %s, want EINTR", s->id, strerror(errno));
		else if (c.run->exit_reason != KVM_EXIT_INTR)
			FAIL("vCPU %d: EINTR with exit reason %u, want KVM_EXIT_INTR",
			     s->id, c.run->exit_reason);
		else
			s->eintr++;
	}
	ivcpu_close(s->v, &c);
	return NULL;
}

long sc_signals(double seconds)
{
	enum { N = 2 };
	struct ivm v;
	pthread_t t[N];
	struct spinner s[N];
	struct sigaction sa = { .sa_handler = on_usr1 };
	long sent = 0, ops = 0;

	sigaction(SIGUSR1, &sa, NULL);
	if (ivm_open(&v))
		return 0;
	for (int i = 0; i < N; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].v = &v;
		s[i].id = i;
		pthread_create(&t[i], NULL, spin_vcpu, &s[i]);
		while (!atomic_load(&s[i].ready))
			usleep(100);
	}
	double until = now() + seconds;
	while (now() < until) {
		int i = rnd() % N;
		pthread_kill(t[i], SIGUSR1);
		sent++;
		usleep(200 + rnd() % 2000);
	}
	for (int i = 0; i < N; i++) {
		atomic_store(&s[i].stop, 1);
		/* Until it has seen the flag: it may be back in KVM_RUN. */
		for (int k = 0; k < 1000 && pthread_tryjoin_np(t[i], NULL) == EBUSY; k++) {
			pthread_kill(t[i], SIGUSR1);
			usleep(1000);
		}
		ops += s[i].eintr;
	}
	/* Signals sent close together may merge into one delivery: the
	 * handler's count is what was delivered, nearly always inside KVM_RUN. */
	long handled = atomic_load(&signals_handled);
	if (ops == 0 || ops < handled / 2)
		FAIL("%ld signals sent, %ld handled, only %ld KVM_RUN returned EINTR", sent,
		     handled, ops);
	atomic_store(&signals_handled, 0);
	ivm_close(&v);
	return ops + sent;
}
