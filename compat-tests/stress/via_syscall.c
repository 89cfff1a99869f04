// SPDX-License-Identifier: GPL-2.0
/*
 * kvmng-stress, the syscall scenarios (docs/api.md sections 2 and 5): native
 * on a kvmng kernel, trapped and emulated by libkvmshim.so on a stock one.
 * Random arguments to every call; threads binding, unbinding and exiting
 * while others run; threads ending in the middle of kvmng_run (exit_group
 * and SIGKILL); mm teardown with a live VM; fork while a VM and a vCPU are
 * bound; (--rmmod) KVM unloaded and reloaded while calls are in flight.
 */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

/* A VM bound to this mm with `n` vCPUs (unbound, in real mode at `rip`). */
struct svm {
	int kvm, vm, n;
	int vcpu[8];
	struct kvm_run *run[8];
	uint8_t *mem;
};

static int svm_setup(struct svm *v, int n, uint64_t rip)
{
	memset(v, 0, sizeof(*v));
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0)
		return -1;
	v->vm = kvmng_create_vm(v->kvm, 0, 0);
	if (v->vm < 0)
		goto fail_kvm;
	v->mem = guest_memory();
	struct kvm_userspace_memory_region2 r = {
		.slot = 0, .memory_size = GUEST_MEM, .userspace_addr = (uintptr_t)v->mem,
	};
	if (!v->mem || kvmng_memory_map(&r, 1, 0) != 1)
		goto fail_vm;
	for (v->n = 0; v->n < n; v->n++) {
		int i = v->n;
		v->vcpu[i] = kvmng_create_vcpu(i, 0);
		if (v->vcpu[i] < 0)
			goto fail_vm;
		v->run[i] = mmap(NULL, run_size(v->kvm), PROT_READ | PROT_WRITE, MAP_SHARED,
				 v->vcpu[i], 0);
		if (v->run[i] == MAP_FAILED || vcpu_real_mode(v->vcpu[i], rip, 0))
			goto fail_vm;
	}
	return 0;
fail_vm:
	kvmng_bind_vm(KVMNG_UNBIND, 0);
	close(v->vm);
fail_kvm:
	close(v->kvm);
	return -1;
}

static void svm_teardown(struct svm *v)
{
	for (int i = 0; i < v->n; i++) {
		munmap(v->run[i], run_size(v->kvm));
		close(v->vcpu[i]);
	}
	/* The calling thread's binding holds the VM too (section 2). */
	kvmng_bind_vcpu(KVMNG_UNBIND, 0);
	kvmng_bind_vm(KVMNG_UNBIND, 0);
	close(v->vm);
	close(v->kvm);
	munmap(v->mem, GUEST_MEM);
}

/* kvmng_run until an exit that is not EINTR. */
static int run_exit(struct kvm_run *run)
{
	for (;;) {
		if (kvmng_run(0) == 0)
			return run->exit_reason;
		if (errno != EINTR)
			return -1;
	}
}

/* Waits for child `pid` at most `secs` seconds (then SIGKILL); its status. */
static int reap(pid_t pid, double secs, const char *what)
{
	int status = 0;
	double until = now() + secs;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now() > until) {
			FAIL("%s: child %d hung for %.0f s", what, pid, secs);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		usleep(1000);
	}
	return status;
}

/* ---- random arguments to every call ---- */

static volatile pthread_t fuzz_thread;
static atomic_int fuzz_stop;

static void on_kick(int sig)
{
	(void)sig;
}

/* Interrupts the fuzzing thread every 20 ms: a kvmng_run of a guest the
 * random state sets left spinning returns EINTR. */
static void *kicker(void *p)
{
	(void)p;
	while (!atomic_load(&fuzz_stop)) {
		pthread_kill(fuzz_thread, SIGUSR2);
		usleep(20000);
	}
	return NULL;
}

static uint64_t random_arg(struct svm *v, uint8_t *buf, void *hole)
{
	switch (rnd() % 12) {
	case 0: case 1: return rnd() % 4;
	case 2: return (uint64_t)-1;
	case 3: return v->vcpu[rnd() % v->n];
	case 4: return rnd() % 2 ? v->vm : v->kvm;
	case 5: case 6: return (uintptr_t)buf;
	case 7: return (uintptr_t)buf + 4096 - (rnd() % 64);	/* runs into the hole */
	case 8: return (uintptr_t)hole;
	case 9: return 0xffff800000000000ull + (rnd() & 0xfffff);
	case 10: return rnd() % 300;
	default: return rnd();
	}
}

/* The child: a VM with 4 vCPUs whose memory is all hlt, then `n` random
 * calls; it exits with its VM alive (mm teardown). */
static int random_child(long n)
{
	struct svm v;
	struct sigaction sa = { .sa_handler = on_kick };
	pthread_t k;

	sigaction(SIGUSR2, &sa, NULL);
	if (svm_setup(&v, 4, CODE_IO_LOOP))
		return 2;
	uint8_t *buf = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return 2;
	munmap(buf + 4096, 4096);
	void *hole = buf + 4096;
	fuzz_thread = pthread_self();
	pthread_create(&k, NULL, kicker, NULL);
	for (long i = 0; i < n; i++) {
		long nr = KVMNG_SYSCALL_BASE + rnd() % (KVMNG_SYSCALL_COUNT + 1);
		uint64_t a[6];

		for (int j = 0; j < 6; j++)
			a[j] = random_arg(&v, buf, hole);
		/* Flags are the last argument: mostly 0, so the call goes past
		 * its first check. */
		if (rnd() % 4)
			for (int j = 1; j < 6; j++)
				if (rnd() % 2)
					a[j] = 0;
		for (int j = 0; j < 4096; j += 8) {
			uint64_t x = rnd();
			memcpy(buf + j, &x, 8);
		}
		/* Half of the buffers look like small state entries / regions. */
		if (rnd() % 2) {
			struct kvmng_state_entry *e = (void *)buf;
			for (int j = 0; j < 8; j++) {
				e[j].kind = 1 + rnd() % 15;
				e[j].op = 1 + rnd() % 2;
				e[j].addr = (uintptr_t)buf + 2048;
				e[j].size = rnd() % 1200;
			}
			if (nr == __NR_kvmng_vcpu_state)
				a[1] = rnd() % 9;
		}
		syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		/* Random calls may unbind the VM: bind a fresh one. */
		if (i % 256 == 255 && kvmng_create_vcpu(200, 0) < 0 && errno == EUNATCH) {
			int vm = kvmng_create_vm(v.kvm, 0, 0);
			(void)vm;
		}
	}
	atomic_store(&fuzz_stop, 1);
	pthread_join(k, NULL);
	_exit(0);
}

long sc_random_args(double seconds)
{
	long ops = 0, per_child = 5000;
	double until = now() + seconds;

	while (now() < until) {
		pid_t pid = fork();
		if (pid == 0)
			_exit(random_child(per_child));
		int status = reap(pid, 60, "random arguments");
		if (status < 0)
			break;
		if (WIFSIGNALED(status))
			FAIL("random arguments: child killed by signal %d", WTERMSIG(status));
		else if (WEXITSTATUS(status))
			FAIL("random arguments: child exit %d (setup failed)", WEXITSTATUS(status));
		else
			ops += per_child;
	}
	return ops;
}

/* ---- threads binding, unbinding and exiting while others run ---- */

struct churn {
	struct svm *v;
	int how;
	long ops;
};

static void *churn_thread(void *p)
{
	struct churn *c = p;
	int i = rnd() % c->v->n;

	if (kvmng_bind_vcpu(c->v->vcpu[i], 0)) {
		if (errno != EBUSY)
			FAIL("kvmng_bind_vcpu: %s, want 0 or EBUSY", strerror(errno));
		c->ops++;
		return NULL;
	}
	c->ops++;
	for (int k = 1 + rnd() % 8; k > 0; k--, c->ops++) {
		int reason = run_exit(c->v->run[i]);
		if (reason != KVM_EXIT_IO)
			FAIL("vCPU %d: kvmng_run gave %d (%s)", i, reason, strerror(errno));
	}
	switch (c->how) {
	case 0:	/* unbind, then exit */
		if (kvmng_bind_vcpu(KVMNG_UNBIND, 0))
			FAIL("unbind: %s", strerror(errno));
		if (kvmng_run(0) != -1 || errno != ESRCH)
			FAIL("kvmng_run after unbinding: want ESRCH");
		c->ops += 2;
		break;
	case 1:	/* exit while bound */
		break;
	default: /* rebind to another vCPU (replaces the binding) */
		if (kvmng_bind_vcpu(c->v->vcpu[(i + 1) % c->v->n], 0) && errno != EBUSY)
			FAIL("rebind: %s", strerror(errno));
		c->ops++;
		break;
	}
	return NULL;
}

long sc_bind_churn(double seconds)
{
	struct svm v;
	long ops = 0;
	double until = now() + seconds;

	if (svm_setup(&v, 4, CODE_IO_LOOP)) {
		FAIL("bind churn: VM setup: %s", strerror(errno));
		return 0;
	}
	while (now() < until) {
		pthread_t t[6];
		struct churn c[6];
		for (int i = 0; i < 6; i++) {
			c[i] = (struct churn){ .v = &v, .how = rnd() % 3 };
			pthread_create(&t[i], NULL, churn_thread, &c[i]);
		}
		for (int i = 0; i < 6; i++) {
			pthread_join(t[i], NULL);
			ops += c[i].ops;
		}
		/* Every thread has exited: every vCPU is free again. */
		for (int i = 0; i < v.n; i++, ops += 2) {
			if (kvmng_bind_vcpu(v.vcpu[i], 0))
				FAIL("vCPU %d still held after its threads exited: %s", i,
				     strerror(errno));
			kvmng_bind_vcpu(KVMNG_UNBIND, 0);
		}
	}
	svm_teardown(&v);
	return ops;
}

/* ---- threads ending in the middle of kvmng_run ---- */

static void *spin_bound(void *p)
{
	struct svm *v = p;
	static atomic_int next;
	int i = atomic_fetch_add(&next, 1) % v->n;

	if (kvmng_bind_vcpu(v->vcpu[i], 0))
		_exit(3);
	for (;;)
		kvmng_run(0);
	return NULL;
}

long sc_exit_mid_run(double seconds)
{
	long ops = 0;
	double until = now() + seconds;

	for (int round = 0; now() < until; round++) {
		pid_t pid = fork();
		if (pid == 0) {
			struct svm v;
			pthread_t t;
			if (svm_setup(&v, 2, CODE_SPIN))
				_exit(2);
			pthread_create(&t, NULL, spin_bound, &v);
			pthread_create(&t, NULL, spin_bound, &v);
			usleep(2000 + rnd() % 20000);
			/* exit_group with both vCPU threads in kvmng_run */
			_exit(0);
		}
		if (round % 2) {
			/* or SIGKILL from outside */
			usleep(2000 + rnd() % 20000);
			kill(pid, SIGKILL);
		}
		int status = reap(pid, 30, "exit in the middle of kvmng_run");
		if (status < 0)
			break;
		if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			FAIL("exit mid-run: child exit %d", WEXITSTATUS(status));
		if (WIFSIGNALED(status) && WTERMSIG(status) != SIGKILL)
			FAIL("exit mid-run: child killed by signal %d", WTERMSIG(status));
		ops++;
	}
	return ops;
}

/* ---- mm teardown with a live VM ---- */

long sc_mm_teardown(double seconds)
{
	long ops = 0;
	double until = now() + seconds;

	while (now() < until) {
		pid_t pid = fork();
		if (pid == 0) {
			struct svm v;
			if (svm_setup(&v, 1 + rnd() % 4, CODE_IO_LOOP))
				_exit(2);
			if (kvmng_bind_vcpu(v.vcpu[0], 0) || run_exit(v.run[0]) != KVM_EXIT_IO)
				_exit(3);
			/* Everything still open and bound. */
			_exit(0);
		}
		int status = reap(pid, 30, "mm teardown");
		if (status < 0)
			break;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			FAIL("mm teardown: child status %#x", status);
		ops++;
	}
	return ops;
}

/* ---- fork while a VM and a vCPU are bound ---- */

/* A fresh image, or a fork child: nothing of the parent is bound. */
static int unbound_here(void)
{
	return kvmng_run(0) == -1 && errno == ESRCH &&
	       kvmng_create_vcpu(0, 0) == -1 && errno == EUNATCH;
}

struct looper {
	struct svm *v;
	atomic_int stop;
	long runs;
};

static void *run_loop(void *p)
{
	struct looper *l = p;

	if (kvmng_bind_vcpu(l->v->vcpu[0], 0)) {
		FAIL("fork scenario: bind: %s", strerror(errno));
		return NULL;
	}
	while (!atomic_load(&l->stop)) {
		if (run_exit(l->v->run[0]) != KVM_EXIT_IO)
			FAIL("fork scenario: kvmng_run: %s", strerror(errno));
		l->runs++;
	}
	return NULL;
}

long sc_fork_bound(double seconds)
{
	struct svm v;
	struct looper l = { 0 };
	pthread_t t;
	long ops = 0;
	double until = now() + seconds;

	if (svm_setup(&v, 2, CODE_IO_LOOP)) {
		FAIL("fork scenario: VM setup: %s", strerror(errno));
		return 0;
	}
	if (kvmng_bind_vcpu(v.vcpu[1], 0))
		FAIL("fork scenario: bind vCPU 1: %s", strerror(errno));
	l.v = &v;
	pthread_create(&t, NULL, run_loop, &l);
	while (now() < until) {
		pid_t pid = fork();
		if (pid == 0) {
			int bad = 0;
			/* The child has no bound VM and no bound vCPU, and the
			 * inherited fds reach nothing (section 2, fork). */
			bad |= !unbound_here();
			bad |= !(kvmng_bind_vm(v.vm, 0) == -1 && errno == EIO);
			bad |= !(kvmng_bind_vcpu(v.vcpu[1], 0) == -1 && errno == EIO);
			if (bad)
				_exit(4);
			/* It makes its own VM with the inherited /dev/kvm. */
			struct svm mine;
			if (svm_setup(&mine, 1, CODE_IO_LOOP) || kvmng_bind_vcpu(mine.vcpu[0], 0) ||
			    run_exit(mine.run[0]) != KVM_EXIT_IO)
				_exit(5);
			_exit(0);
		}
		int status = reap(pid, 30, "fork while bound");
		if (status < 0)
			break;
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			FAIL("fork while bound: child status %#x (4: reached the parent's VM, 5: own VM failed)",
			     status);
		ops += 6;
		/* The parent's bindings are intact. */
		int fd7 = kvmng_create_vcpu(7, 0);
		if (fd7 < 0 && errno != EEXIST)
			FAIL("fork while bound: the parent lost its VM: %s", strerror(errno));
		if (fd7 >= 0)
			close(fd7);
	}
	atomic_store(&l.stop, 1);
	pthread_join(t, NULL);
	ops += l.runs;
	svm_teardown(&v);
	return ops;
}

/* ---- the task hooks racing: bind, exit, exec, fork and signals ---- */

/* In the child of one round: the vCPU threads' ids for the signaller. */
static atomic_int race_tids[8];
static struct svm race_vm;

static void *race_vcpu(void *p)
{
	int slot = (int)(intptr_t)p;

	atomic_store(&race_tids[slot], (int)gettid());
	for (;;) {
		int i = rnd() % race_vm.n;
		if (kvmng_bind_vcpu(race_vm.vcpu[i], 0)) {
			if (errno != EBUSY)
				_exit(10);
			continue;
		}
		for (int k = 1 + rnd() % 4; k > 0; k--) {
			/* A signal may end a run: EINTR, or an exit. */
			if (kvmng_run(0) && errno != EINTR)
				_exit(11);
		}
		switch (rnd() % 4) {
		case 0: /* unbind */
			if (kvmng_bind_vcpu(KVMNG_UNBIND, 0))
				_exit(12);
			break;
		case 1: { /* end while bound; a new thread takes the slot */
			pthread_t t;
			atomic_store(&race_tids[slot], 0);
			if (pthread_create(&t, NULL, race_vcpu, p) == 0)
				pthread_detach(t);
			return NULL;
		}
		default: /* stay bound: the next bind replaces it */
			break;
		}
	}
}

static void *race_forker(void *p)
{
	(void)p;
	for (;;) {
		int how = rnd() % 3;
		pid_t pid = fork();
		if (pid == 0) {
			if (how == 0)
				_exit(0);
			if (how == 1)
				_exit(unbound_here() ? 0 : 13);
			char *argv[] = { "kvmng-stress", "exec-check", NULL };
			execv("/proc/self/exe", argv);
			_exit(14);
		}
		int status;
		if (pid > 0 && waitpid(pid, &status, 0) == pid &&
		    !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			_exit(15);
	}
	return NULL;
}

static void *race_signaller(void *p)
{
	(void)p;
	for (;;) {
		for (int s = 0; s < 8; s++) {
			int tid = atomic_load(&race_tids[s]);
			if (tid)
				syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
		}
		sched_yield();
	}
	return NULL;
}

/* The child of one round: 4 vCPU threads binding, running, unbinding and
 * ending; a thread forking children that exit, check, or exec; a thread
 * signalling the vCPU threads all the time; and the main thread ends it
 * all by exec (`how` 0), exit_group (1), or waits for SIGKILL (2). */
static void race_child(int how)
{
	struct sigaction sa = { .sa_handler = on_kick };
	pthread_t t;

	sigaction(SIGUSR1, &sa, NULL);
	if (svm_setup(&race_vm, 4, CODE_IO_LOOP))
		_exit(2);
	for (int i = 0; i < 4; i++)
		pthread_create(&t, NULL, race_vcpu, (void *)(intptr_t)i);
	pthread_create(&t, NULL, race_forker, NULL);
	pthread_create(&t, NULL, race_signaller, NULL);
	usleep(5000 + rnd() % 45000);
	if (how == 0) {
		char *argv[] = { "kvmng-stress", "exec-check", NULL };
		execv("/proc/self/exe", argv);
		_exit(16);
	}
	if (how == 1)
		_exit(0);
	for (;;)
		pause();
}

/* kvmng-stress exec-check: the image an exec started. */
int exec_check(void)
{
	return unbound_here() ? 0 : 17;
}

long sc_task_hooks(double seconds)
{
	long ops = 0;
	double until = now() + seconds;

	while (now() < until) {
		int how = rnd() % 3;
		pid_t pid = fork();
		if (pid == 0)
			race_child(how);
		if (how == 2) {
			usleep(5000 + rnd() % 45000);
			kill(pid, SIGKILL);
		}
		int status = reap(pid, 30, "task hooks racing");
		if (status < 0)
			break;
		if (how == 2 ? !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
			     : !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
			FAIL("task hooks racing (%s): child status %#x (exit 10-17: see sc_task_hooks)",
			     how == 0 ? "exec" : how == 1 ? "exit_group" : "SIGKILL", status);
		ops++;
	}
	return ops;
}

/* ---- KVM unloaded while calls are in flight (KVM=m kernels) ---- */

struct worker_counts {
	long made, unloaded, other;
};

/* Makes short-lived VMs through the syscalls, with gaps in which kvm.ko
 * can go; while it is gone, the calls must answer ENOSYS. */
static void *vm_worker(void *p)
{
	atomic_int *stop = p;
	struct worker_counts *c = calloc(1, sizeof(*c));

	while (!atomic_load(stop)) {
		struct svm v;
		if (svm_setup(&v, 1, CODE_IO_LOOP) == 0) {
			c->made++;
			if (kvmng_bind_vcpu(v.vcpu[0], 0) == 0)
				run_exit(v.run[0]);
			kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0);
			svm_teardown(&v);
		} else if (access("/dev/kvm", F_OK) != 0) {
			/* Unloaded: the probe answers ENOSYS (section 4). */
			errno = 0;
			if (kvmng_run(~0U) == -1 && errno == ENOSYS)
				c->unloaded++;
			else if (errno != EINVAL)	/* reloaded meanwhile */
				FAIL("kvm.ko unloaded: kvmng_run(~0) gave %s, want ENOSYS",
				     strerror(errno));
		} else {
			c->other++;	/* EEXIST (the other thread's VM), a race with the unload */
		}
		usleep(rnd() % 20000);	/* windows without a VM: kvm.ko can go */
	}
	return c;
}

long sc_rmmod(double seconds, const char *load_cmd)
{
	long ops = 0, unloads = 0, loads = 0;
	double until = now() + seconds;
	pid_t workers[2];

	for (int w = 0; w < 2; w++) {
		workers[w] = fork();
		if (workers[w] == 0) {
			atomic_int stop = 0;
			pthread_t t[2];
			struct worker_counts total = { 0 };
			void *p;
			pthread_create(&t[0], NULL, vm_worker, &stop);
			pthread_create(&t[1], NULL, vm_worker, &stop);
			sleep((unsigned)seconds + 1);
			atomic_store(&stop, 1);
			for (int i = 0; i < 2; i++) {
				pthread_join(t[i], &p);
				struct worker_counts *c = p;
				total.made += c->made;
				total.unloaded += c->unloaded;
				total.other += c->other;
			}
			printf("kvmng-stress: rmmod worker %d: %ld VMs made and run, %ld calls answered ENOSYS while kvm.ko was out, %ld other refusals\n",
			       w, total.made, total.unloaded, total.other);
			fflush(stdout);
			_exit(atomic_load(&failures) ? 1 : 0);
		}
	}
	long refused = 0;
	while (now() < until) {
		/* delete_module(2) straight away, as fast as it goes, while the
		 * workers' calls are in flight: refused (EBUSY, EWOULDBLOCK)
		 * while a VM holds the module. */
		if (syscall(SYS_delete_module, "kvm_amd", O_NONBLOCK) == 0 ||
		    access("/sys/module/kvm_amd", F_OK) != 0)
			syscall(SYS_delete_module, "kvm_intel", O_NONBLOCK);
		ops++;
		if (access("/sys/module/kvm_amd", F_OK) != 0 &&
		    access("/sys/module/kvm_intel", F_OK) != 0 &&
		    syscall(SYS_delete_module, "kvm", O_NONBLOCK) == 0) {
			unloads++;
			usleep(rnd() % 200000);	/* the workers meet ENOSYS */
			if (system(load_cmd) < 0)
				FAIL("system(%s): %s", load_cmd, strerror(errno));
			if (access("/sys/module/kvm", F_OK) == 0)
				loads++;
			else
				FAIL("%s did not load kvm.ko", load_cmd);
		} else {
			refused++;
		}
		ops++;
		usleep(rnd() % 2000);
	}
	for (int w = 0; w < 2; w++) {
		int status = reap(workers[w], 60, "rmmod worker");
		if (status >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status)))
			FAIL("rmmod worker %d: status %#x", w, status);
	}
	printf("kvmng-stress: rmmod: kvm.ko unloaded %ld times and loaded %ld times, %ld unloads refused (in use), while 2 processes made VMs\n",
	       unloads, loads, refused);
	return ops;
}
