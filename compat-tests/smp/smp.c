// SPDX-License-Identifier: GPL-2.0
/*
 * kvmng-smp: what an SMP VMM does to KVM, through plain ioctl(), so that
 * it runs natively, under libkvmshim.so in auto mode (translated) and in
 * passthrough with the same output (compat-tests/smp/smp-smoke.sh
 * compares them).
 *
 *   kvmng-smp [--vcpus N] [--signals sigmask|kvm-sigmask] [--rounds R]
 *             [--timeout S]
 *
 * An in-kernel irqchip and N vCPU threads made the QEMU way (vcpu.c: all
 * signals blocked but SIG_IPI = SIGUSR1, by pthread_sigmask with
 * immediate_exit, or by KVM_SET_SIGNAL_MASK). While the threads start,
 * while the APs sit in KVM_RUN waiting for the SIPI the BSP sends them
 * (INIT-SIPI-SIPI, as SeaBIOS does), and while they run, the main thread
 * moves the data slot the guests poll (create at P, move to Q, move to
 * P, delete: single KVM_SET_USER_MEMORY_REGION calls, as QEMU remaps PAM
 * and SMRAM). The guests idle in HLT inside KVM_RUN and poll the slot
 * after each interrupt (guest.S). Each round the main thread changes the
 * slot,
 * pauses and resumes every vCPU the QEMU way, and injects one interrupt
 * of each kind into every vCPU (KVM_IRQ_LINE and an irqfd through the
 * IOAPIC, KVM_SIGNAL_MSI to the vCPU's LAPIC, and an irqfd on an MSI route
 * of KVM_SET_GSI_ROUTING, the routes moved to the next vCPU each round as
 * a guest changing its interrupts' affinity makes QEMU move them), in one
 * of three orders, by turns: the slot changed while the vCPUs are paused; changed while they
 * idle in KVM_RUN, then the pause; changed, then the interrupts and at
 * once the pause, which finds them busy with interrupts and exits. Then
 * it waits until every guest has seen the new slot state, taken exactly
 * the round's interrupts and gone back to HLT. Checked:
 *   - every AP starts through its SIPI and the trampoline;
 *   - every guest sees every slot state, and never an older generation
 *     after a newer one (the guest counts those);
 *   - every guest takes exactly R interrupts of each kind, the IPI that
 *     the previous vCPU sends when it takes its KVM_SIGNAL_MSI included,
 *     and no other vector, and reports each through port I/O (R exits per kind); the
 *     routed MSIs (one vector per source irqfd) come from each source in
 *     its turn, so a route change that did not take is seen;
 *   - KVM_SIGNAL_MSI delivers every MSI to one vCPU;
 *   - every pause parks every vCPU (KVM_RUN answers EINTR), the state its
 *     thread reads while parked is sane, the main thread reads the same
 *     registers on the vCPU's fd, every resume runs it again;
 *   - at most 2 slot changes take 1 s (load on this host makes one now
 *     and then: a third ends the run), none takes 5 s, no wait takes 10 s,
 *     the whole run ends within --timeout.
 * stdout holds only the deterministic summary (compared across modes);
 * timings and counts that depend on scheduling go to stderr. Exit status
 * 0 when every check holds, 1 on a failure, 3 on the timeout.
 */
#include "smp.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

atomic_long failures;
atomic_int aborted;

#define WARMUP_OPS	8	/* slot operations while the vCPU threads start */
#define BOOT_OPS	8	/* ... and while the BSP starts the APs */
#define WAIT_LIMIT	10.0	/* seconds for any one wait on the guests */

static const char *phase = "setup";
static double timeout_s = 40;

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *watchdog(void *arg)
{
	(void)arg;
	struct timespec ts = { .tv_sec = (time_t)timeout_s,
			       .tv_nsec = (long)((timeout_s - (time_t)timeout_s) * 1e9) };
	nanosleep(&ts, NULL);
	fprintf(stderr, "kvmng-smp: FAIL: timed out after %.0f s (in %s)\n", timeout_s, phase);
	printf("kvmng-smp: FAIL: timed out\n");
	fflush(stdout);
	_exit(3);
}

static void on_ipi(int sig)
{
	(void)sig;
}

/* Pauses every vCPU: each must park within WAIT_LIMIT. */
static double pause_all(struct vm *v)
{
	double t0 = now();

	pthread_mutex_lock(&v->lock);
	unsigned gen = atomic_fetch_add(&v->pause_gen, 1) + 1;
	pthread_mutex_unlock(&v->lock);
	for (int i = 0; i < v->nvcpus; i++)
		vcpu_kick(&v->vcpu[i]);
	pthread_mutex_lock(&v->lock);
	for (;;) {
		int parked = 0;
		for (int i = 0; i < v->nvcpus; i++)
			parked += v->vcpu[i].parked_gen == gen;
		if (parked == v->nvcpus || atomic_load(&aborted))
			break;
		if (now() - t0 > WAIT_LIMIT) {
			FAIL("pause %u: %d of %d vCPUs parked after %.0f s", gen, parked,
			     v->nvcpus, WAIT_LIMIT);
			atomic_store(&aborted, 1);
			break;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 10 * 1000 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&v->cond, &v->lock, &ts);
	}
	pthread_mutex_unlock(&v->lock);
	double dt = now() - t0;
	/* A VMM's other threads look at parked vCPUs too (a monitor, a
	 * migration): the same registers from here. */
	for (int i = 0; i < v->nvcpus && !atomic_load(&aborted); i++) {
		struct vcpu *c = &v->vcpu[i];
		struct kvm_regs r;
		if (ioctl(c->fd, KVM_GET_REGS, &r)) {
			FAIL("vcpu %d parked: KVM_GET_REGS from the main thread: %s", i, strerror(errno));
		} else if (r.rip != c->parked_regs.rip || r.rsp != c->parked_regs.rsp ||
			   r.rbx != c->parked_regs.rbx || r.rflags != c->parked_regs.rflags) {
			FAIL("vcpu %d parked: main thread reads rip %#llx rsp %#llx rflags %#llx, its thread read rip %#llx rsp %#llx rflags %#llx",
			     i, (unsigned long long)r.rip, (unsigned long long)r.rsp,
			     (unsigned long long)r.rflags, (unsigned long long)c->parked_regs.rip,
			     (unsigned long long)c->parked_regs.rsp,
			     (unsigned long long)c->parked_regs.rflags);
		} else {
			c->main_same++;
		}
	}
	return dt;
}

static void resume_all(struct vm *v)
{
	pthread_mutex_lock(&v->lock);
	v->resume_gen = atomic_load(&v->pause_gen);
	pthread_cond_broadcast(&v->cond);
	pthread_mutex_unlock(&v->lock);
}

/* The routed MSIs vCPU j has taken from vCPU k's irqfd after `rounds`
 * rounds: in round r the route of source k points at vCPU (k + r) % n. */
static uint64_t routed_want(int j, int k, int rounds, int n)
{
	uint64_t c = 0;

	for (int r = 1; r <= rounds; r++)
		c += (k + r) % n == j;
	return c;
}

static int routed_ok(volatile uint64_t *d, int j, int rounds, int n)
{
	for (int k = 0; k < n; k++)
		if (d[D_ROUTED / 8 + k] != routed_want(j, k, rounds, n))
			return 0;
	return 1;
}

/* Waits until every guest reads (p, q), has taken `n` interrupts of each
 * kind, and has polled since the last one: it then idles in HLT inside
 * KVM_RUN, where the next round's slot change finds it (in even rounds). */
static int wait_guests(struct vm *v, uint64_t p, uint64_t q, long n, int round)
{
	double t0 = now();

	for (;;) {
		int ok = 0;
		for (int i = 0; i < v->nvcpus; i++) {
			volatile uint64_t *d = guest_data(v, i);
			ok += d[D_SEEN_P / 8] == p && d[D_SEEN_Q / 8] == q &&
			      d[D_IRQ_LINE / 8] == (uint64_t)n && d[D_IRQFD / 8] == (uint64_t)n &&
			      d[D_MSI / 8] == (uint64_t)n && d[D_IPI / 8] == (uint64_t)n &&
			      routed_ok(d, i, n, v->nvcpus) &&
			      d[D_IDLE / 8] == 1;
		}
		if (ok == v->nvcpus)
			return 0;
		if (atomic_load(&aborted))
			return -1;
		if (now() - t0 > WAIT_LIMIT) {
			for (int i = 0; i < v->nvcpus; i++) {
				volatile uint64_t *d = guest_data(v, i);
				FAIL("round %d, vcpu %d after %.0f s: reads P=%llu Q=%llu (want %llu %llu), "
				     "interrupts line %llu irqfd %llu msi %llu ipi %llu (want %ld), routed as they should %d, polls %llu, idle %llu",
				     round, i, WAIT_LIMIT, (unsigned long long)d[D_SEEN_P / 8],
				     (unsigned long long)d[D_SEEN_Q / 8], (unsigned long long)p,
				     (unsigned long long)q, (unsigned long long)d[D_IRQ_LINE / 8],
				     (unsigned long long)d[D_IRQFD / 8], (unsigned long long)d[D_MSI / 8],
				     (unsigned long long)d[D_IPI / 8], n, routed_ok(d, i, n, v->nvcpus), (unsigned long long)d[D_LOOPS / 8], (unsigned long long)d[D_IDLE / 8]);
			}
			atomic_store(&aborted, 1);
			return -1;
		}
		usleep(200);
	}
}

static int wait_ready(struct vm *v)
{
	double t0 = now();

	for (;;) {
		int ready = 0;
		for (int i = 0; i < v->nvcpus; i++)
			ready += guest_data(v, i)[D_READY / 8] == 1;
		if (ready == v->nvcpus)
			return 0;
		if (atomic_load(&aborted))
			return -1;
		if (now() - t0 > WAIT_LIMIT) {
			FAIL("%d of %d guests ready after %.0f s", ready, v->nvcpus, WAIT_LIMIT);
			atomic_store(&aborted, 1);
			return -1;
		}
		usleep(200);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: kvmng-smp [--vcpus N] [--signals sigmask|kvm-sigmask] [--rounds R] [--timeout S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct vm v;
	int rounds = 16;

	v.nvcpus = 2;
	v.variant = V_SIGMASK;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--vcpus") && i + 1 < argc)
			v.nvcpus = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = atof(argv[++i]);
		else if (!strcmp(argv[i], "--signals") && i + 1 < argc) {
			i++;
			if (!strcmp(argv[i], "sigmask"))
				v.variant = V_SIGMASK;
			else if (!strcmp(argv[i], "kvm-sigmask"))
				v.variant = V_KVM_SIGMASK;
			else
				usage();
		} else
			usage();
	}
	if (v.nvcpus < 1 || v.nvcpus > 4 || rounds < 1 || timeout_s <= 0)
		usage();	/* 4: the IOAPIC pins GSI_LINE.. and GSI_IRQFD.. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	int probe = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (probe < 0) {
		printf("!!! kvmng-smp: /dev/kvm is not usable (%s): SKIPPED\n", strerror(errno));
		return 0;
	}
	close(probe);

	pthread_t wd;
	pthread_create(&wd, NULL, watchdog, NULL);
	double t_start = now();
	printf("kvmng-smp: %d vCPUs, signals: %s, %d rounds\n", v.nvcpus,
	       v.variant == V_SIGMASK ? "pthread_sigmask + immediate_exit"
				      : "KVM_SET_SIGNAL_MASK",
	       rounds);

	struct sigaction sa = { .sa_handler = on_ipi };
	sigaction(SIG_IPI, &sa, NULL);
	pthread_mutex_init(&v.lock, NULL);
	pthread_cond_init(&v.cond, NULL);
	for (int i = 0; i < v.nvcpus; i++)
		v.vcpu[i] = (struct vcpu){ .vm = &v, .id = i, .fd = -1 };
	if (vm_setup(&v)) {
		printf("kvmng-smp: FAIL: VM set-up\n");
		return 1;
	}

	/* The vCPU threads start with every signal blocked, as
	 * qemu_thread_create makes them; the main thread goes on working. */
	phase = "start";
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < v.nvcpus; i++)
		pthread_create(&v.vcpu[i].thread, NULL, vcpu_thread, &v.vcpu[i]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	uint64_t p, q;
	int started_while = 0;
	for (int k = 0; k < WARMUP_OPS && !atomic_load(&aborted); k++) {
		slot_op(&v, &p, &q);
		int up = 0;
		for (int i = 0; i < v.nvcpus; i++)
			up += atomic_load(&v.vcpu[i].up);
		started_while += up < v.nvcpus;
		usleep(1000);
	}

	/* QEMU's vm_start once every vCPU thread has made its vCPU. */
	phase = "starting the VM";
	for (double t0 = now(); !atomic_load(&aborted);) {
		int up = 0;
		for (int i = 0; i < v.nvcpus; i++)
			up += atomic_load(&v.vcpu[i].up);
		if (up == v.nvcpus)
			break;
		if (now() - t0 > WAIT_LIMIT) {
			FAIL("%d of %d vCPU threads up after %.0f s", up, v.nvcpus, WAIT_LIMIT);
			atomic_store(&aborted, 1);
		}
		usleep(200);
	}
	pthread_mutex_lock(&v.lock);
	v.started = 1;
	pthread_cond_broadcast(&v.cond);
	pthread_mutex_unlock(&v.lock);
	/* SeaBIOS remaps memory while its APs sit in KVM_RUN waiting for
	 * their SIPI: the BSP sends it once GO is set. */
	int during_boot = 0;
	for (int k = 0; k < BOOT_OPS && !atomic_load(&aborted); k++) {
		slot_op(&v, &p, &q);
		int ready = 0;
		for (int i = 0; i < v.nvcpus; i++)
			ready += guest_data(&v, i)[D_READY / 8] == 1;
		during_boot += ready < v.nvcpus;
		usleep(1000);
	}
	__atomic_store_n((uint64_t *)(v.low + GO_GPA), 1, __ATOMIC_SEQ_CST);

	phase = "waiting for the guests";
	double pause_max = 0, pause_sum = 0;
	double t_rounds = now();
	if (!wait_ready(&v)) {
		for (int r = 1; r <= rounds && !atomic_load(&aborted); r++) {
			phase = "rounds";
			double pt;
			/* The MSI routes move to the next vCPU, while they run. */
			if (set_routing(&v, r))
				break;
			/* The interrupts wake the guests: each polls the slot
			 * after taking them. */
			switch (r % 3) {
			case 1:	/* the slot changed while the vCPUs are parked */
				pt = pause_all(&v);
				slot_op(&v, &p, &q);
				resume_all(&v);
				inject(&v);
				break;
			case 2:	/* ... while they idle in HLT inside KVM_RUN */
				slot_op(&v, &p, &q);
				pt = pause_all(&v);
				resume_all(&v);
				inject(&v);
				break;
			default: /* a pause while they take interrupts: kicks
				  * land inside KVM_RUN and between two */
				slot_op(&v, &p, &q);
				inject(&v);
				pt = pause_all(&v);
				resume_all(&v);
				break;
			}
			pause_sum += pt;
			if (pt > pause_max)
				pause_max = pt;
			if (wait_guests(&v, p, q, r, r))
				break;
		}
	}
	t_rounds = now() - t_rounds;

	phase = "stopping";
	atomic_store(&v.stop, 1);
	pthread_mutex_lock(&v.lock);
	pthread_cond_broadcast(&v.cond);
	pthread_mutex_unlock(&v.lock);
	for (int i = 0; i < v.nvcpus; i++) {
		for (int k = 0; pthread_tryjoin_np(v.vcpu[i].thread, NULL) == EBUSY; k++) {
			if (atomic_load(&v.vcpu[i].up))
				vcpu_kick(&v.vcpu[i]);
			usleep(k < 100 ? 100 : 10000);
		}
	}

	/* The summary: only what must be the same in every mode. */
	long mmio = 0, eintr = 0, unasked = 0, eagain = 0;
	for (int i = 0; i < v.nvcpus; i++) {
		struct vcpu *c = &v.vcpu[i];
		volatile uint64_t *d = guest_data(&v, i);
		uint64_t line = d[D_IRQ_LINE / 8], fd = d[D_IRQFD / 8], msi = d[D_MSI / 8];
		uint64_t ipi = d[D_IPI / 8], routed = 0;
		char routes[64] = "";
		for (int k = 0; k < v.nvcpus; k++) {
			routed += d[D_ROUTED / 8 + k];
			snprintf(routes + strlen(routes), sizeof(routes) - strlen(routes), "%s%llu",
				 k ? "/" : "", (unsigned long long)d[D_ROUTED / 8 + k]);
		}
		uint64_t other = d[D_OTHER / 8], order = d[D_ORDER_ERR / 8];
		long exits = c->port_exits[0] + c->port_exits[1] + c->port_exits[2] +
			     c->port_exits[16] + c->port_exits[8];
		long routed_exits = 0;
		for (int k = 0; k < 4; k++)
			routed_exits += c->port_exits[12 + k];
		exits += routed_exits;

		if (order)
			FAIL("vcpu %d: %llu slot generations seen out of order", i,
			     (unsigned long long)order);
		if (line != (uint64_t)rounds || fd != (uint64_t)rounds || msi != (uint64_t)rounds ||
		    ipi != (uint64_t)rounds || !routed_ok(d, i, rounds, v.nvcpus) || other)
			FAIL("vcpu %d: interrupts line %llu irqfd %llu msi %llu ipi %llu routed msi by source %s other %llu, want %d each, the routes' turns and 0 other",
			     i, (unsigned long long)line, (unsigned long long)fd,
			     (unsigned long long)msi, (unsigned long long)ipi, routes,
			     (unsigned long long)other, rounds);
		if (c->port_exits[0] != (long)line || c->port_exits[1] != (long)fd ||
		    c->port_exits[2] != (long)msi || c->port_exits[16] != (long)ipi ||
		    routed_exits != (long)routed || c->port_exits[8] != (long)other)
			FAIL("vcpu %d: port exits %ld/%ld/%ld/%ld/%ld/%ld, the guest counted %llu/%llu/%llu/%llu/%llu/%llu",
			     i, c->port_exits[0], c->port_exits[1], c->port_exits[2],
			     c->port_exits[16], routed_exits, c->port_exits[8],
			     (unsigned long long)line, (unsigned long long)fd,
			     (unsigned long long)msi, (unsigned long long)ipi,
			     (unsigned long long)routed, (unsigned long long)other);
		if (c->paused != rounds || c->resumed != rounds || c->state_ok != rounds ||
		    c->main_same != rounds)
			FAIL("vcpu %d: paused %ld resumed %ld state ok %ld bad %ld, main thread agreed %ld, want %d",
			     i, c->paused, c->resumed, c->state_ok, c->state_bad, c->main_same, rounds);
		printf("vcpu %d (%s): slot generations in order: %s; interrupts line %llu irqfd %llu msi %llu ipi %llu routed msi by source %s other %llu; "
		       "port exits %ld; paused %ld resumed %ld, state sane %ld, same from the main thread %ld\n",
		       i, i ? "AP, started by INIT-SIPI-SIPI" : "BSP", order ? "NO" : "yes",
		       (unsigned long long)line, (unsigned long long)fd,
		       (unsigned long long)msi, (unsigned long long)ipi, routes,
		       (unsigned long long)other,
		       exits, c->paused,
		       c->resumed, c->state_ok, c->main_same);
		mmio += c->mmio_exits;
		eintr += c->eintr;
		unasked += c->eintr_unasked;
		eagain += c->eagain;
	}
	if (v.msi_delivered != v.msi_calls)
		FAIL("KVM_SIGNAL_MSI delivered %ld of %ld", v.msi_delivered, v.msi_calls);
	printf("vm: %d slot changes (the first %d as the vCPU threads start, %d more while the APs wait for their SIPI); "
	       "KVM_IRQ_LINE %ld, irqfd writes %ld, KVM_SIGNAL_MSI %ld delivered %ld, "
	       "KVM_SET_GSI_ROUTING %ld\n",
	       v.slot_ops, WARMUP_OPS, BOOT_OPS, v.irq_line_calls, v.irqfd_writes, v.msi_calls,
	       v.msi_delivered, v.routings);
	vm_teardown(&v);

	double wall = now() - t_start;
	fprintf(stderr,
		"kvmng-smp: wall %.2f s (rounds %.2f s); slot change max %.1f ms mean %.2f ms; "
		"pause max %.1f ms mean %.2f ms; MMIO exits %ld; EINTR %ld (%ld without a pause asked); "
		"%d of %d start-up slot changes before every vCPU thread was up, %d of %d before every guest was ready; "
		"%d slot changes took %.1f s or more; KVM_RUN EAGAIN (APs woken by INIT/SIPI) %ld\n",
		wall, t_rounds, v.slot_max_s * 1e3, v.slot_ops ? v.slot_sum_s * 1e3 / v.slot_ops : 0,
		pause_max * 1e3, rounds ? pause_sum * 1e3 / rounds : 0, mmio, eintr, unasked,
		started_while, WARMUP_OPS, during_boot, BOOT_OPS, v.stalls, STALL_S, eagain);
	long f = atomic_load(&failures);
	if (f) {
		printf("kvmng-smp: FAIL (%ld failures, on stderr)\n", f);
		return 1;
	}
	printf("kvmng-smp: PASS\n");
	return 0;
}
