// SPDX-License-Identifier: GPL-2.0
/*
 * kvmng-stress: stress and soak of the kvmng API (docs/reliability.md).
 *
 *   kvmng-stress ioctl   [--seconds N]   the legacy ioctl scenarios (under
 *                                        libkvmshim.so: through the shim)
 *   kvmng-stress syscall [--seconds N] [--rmmod 'LOAD COMMAND']
 *                                        the syscall scenarios (native, or
 *                                        through the shim's trap)
 *   kvmng-stress soak    [--seconds N]   both, in a loop, sampling the fd
 *                                        count and RSS, which must stay flat
 *
 * Prints the operations of each scenario and a total; exit status 1 on any
 * failure (a wrong result, a crash or hang of a child), 2 when it cannot
 * run (no kvmng syscalls); without a usable /dev/kvm it says SKIPPED loudly
 * and exits 0.
 */
#include "common.h"

#include <fcntl.h>
#include <unistd.h>

struct scenario {
	const char *name;
	long (*fn)(double seconds);
	double share;	/* of --seconds */
};

static long max_vcpus(double s)
{
	(void)s;
	return sc_max_vcpus();
}

static const struct scenario ioctl_scenarios[] = {
	{ "max vCPUs", max_vcpus, 0 },
	{ "threads hammering state operations", sc_hammer, 0.5 },
	{ "signals during KVM_RUN", sc_signals, 0.5 },
};

static const struct scenario syscall_scenarios[] = {
	{ "random arguments to every syscall", sc_random_args, 0.25 },
	{ "threads binding, unbinding and exiting", sc_bind_churn, 0.15 },
	{ "threads ending in the middle of kvmng_run", sc_exit_mid_run, 0.15 },
	{ "mm teardown with a live VM", sc_mm_teardown, 0.1 },
	{ "fork while a VM is bound", sc_fork_bound, 0.15 },
	{ "bind, exit, exec, fork and signals racing", sc_task_hooks, 0.2 },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static long run_all(const struct scenario *s, size_t n, double seconds, int quiet)
{
	long total = 0;

	for (size_t i = 0; i < n; i++) {
		double t0 = now();
		long failed0 = atomic_load(&failures);
		long ops = s[i].fn(seconds * s[i].share);
		total += ops;
		if (!quiet)
			printf("kvmng-stress: %-44s %9ld ops in %5.1f s%s\n", s[i].name, ops,
			       now() - t0, atomic_load(&failures) > failed0 ? "  FAILED" : "");
	}
	return total;
}

/* The soak: rounds of every scenario; the fd count and RSS after each
 * round, which must come back to where the first round left them. */
static long soak(double seconds)
{
	long total = 0;
	int fd0 = -1;
	long rss0 = -1, rss_max = 0;
	double t0 = now();
	int round = 0;

	printf("kvmng-stress: soak for %.0f s: round, seconds, operations, open fds, RSS KiB\n",
	       seconds);
	while (now() - t0 < seconds) {
		total += run_all(ioctl_scenarios, N(ioctl_scenarios), 10, 1);
		total += run_all(syscall_scenarios, N(syscall_scenarios), 10, 1);
		int fds = fd_count();
		long rss = rss_kib();
		printf("kvmng-stress: soak %3d %6.0f %10ld %4d %7ld\n", ++round, now() - t0,
		       total, fds, rss);
		fflush(stdout);
		if (verbose || (round > 1 && fds != fd0))
			fd_dump("after this round");
		if (round == 1) {
			/* The first round sets up what lives for the process
			 * (the shim's tables, the /dev/kvm fd of the system scope). */
			fd0 = fds;
			rss0 = rss;
			continue;
		}
		if (rss > rss_max)
			rss_max = rss;
		if (fds != fd0)
			FAIL("soak round %d: %d open fds, %d after round 1", round, fds, fd0);
	}
	/* Flat: within 8 MiB or 10% of round 1 (allocator noise). */
	long slack = rss0 / 10 > 8192 ? rss0 / 10 : 8192;
	if (round > 1 && rss_max > rss0 + slack)
		FAIL("soak: RSS grew from %ld KiB (round 1) to %ld KiB", rss0, rss_max);
	printf("kvmng-stress: soak: %d rounds; open fds %d after round 1, %d at the end; RSS %ld KiB after round 1, at most %ld KiB after\n",
	       round, fd0, fd_count(), rss0, rss_max ? rss_max : rss0);
	return total;
}

int main(int argc, char **argv)
{
	double seconds = 20;
	const char *mode = argc > 1 ? argv[1] : "";
	const char *load = NULL;

	if (!strcmp(mode, "exec-check"))
		return exec_check();

	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--rmmod") && i + 1 < argc)
			load = argv[++i];
		else if (!strcmp(argv[i], "-v"))
			verbose = 1;
		else {
			fprintf(stderr, "kvmng-stress: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0 && !load) {
		printf("!!! kvmng-stress: /dev/kvm is not usable (%s): SKIPPED, 0 operations\n",
		       strerror(errno));
		return 0;
	}
	if (kvm >= 0)
		close(kvm);
	printf("kvmng-stress %s: libkvmshim.so %s; kvmng syscalls %s\n", mode,
	       shim_loaded() ? "preloaded" : "NOT preloaded",
	       kvmng_present() ? "present (native, or trapped by the shim)" : "absent (ENOSYS)");
	double t0 = now();
	long ops;
	if (!strcmp(mode, "ioctl")) {
		ops = run_all(ioctl_scenarios, N(ioctl_scenarios), seconds, 0);
	} else if (!strcmp(mode, "syscall")) {
		if (!kvmng_present() && !load) {
			printf("!!! kvmng-stress: the kvmng syscalls answer ENOSYS: preload libkvmshim.so or boot a kvmng kernel\n");
			return 2;
		}
		if (load) {
			ops = sc_rmmod(seconds, load);
			printf("kvmng-stress: %-44s %9ld ops\n", "KVM unloaded while calls are in flight", ops);
		} else {
			ops = run_all(syscall_scenarios, N(syscall_scenarios), seconds, 0);
		}
	} else if (!strcmp(mode, "soak")) {
		ops = soak(seconds);
	} else {
		fprintf(stderr, "usage: kvmng-stress ioctl|syscall|soak [--seconds N] [--rmmod 'LOAD COMMAND']\n");
		return 2;
	}
	printf("kvmng-stress %s: %ld operations in %.1f s, %ld failures\n", mode, ops, now() - t0,
	       atomic_load(&failures));
	return atomic_load(&failures) ? 1 : 0;
}
