// SPDX-License-Identifier: GPL-2.0
/*
 * conformance --bench [ITERATIONS]: one cheap operation (get the vCPU's
 * MP state) through the kvmng syscall (emulated through the seccomp trap
 * on a stock kernel with the shim preloaded, native on a kvmng kernel) and
 * through the legacy ioctl, plus getpid() as the floor of a syscall.
 * Prints min/median/p99 in ns and the ratios. A measurement, not a test.
 */
#include "harness.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <time.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

struct stats {
	uint64_t min, median, p99;
};

static struct kvmng_state_entry e;
static struct kvm_mp_state mp;
static int vcpu_fd;

static int op_syscall(void)
{
	return kvmng_vcpu_state(&e, 1, 0) == 1;
}

static int op_ioctl(void)
{
	return kioctl(vcpu_fd, KVM_GET_MP_STATE, &mp) == 0;
}

static int op_probe(void)
{
	/* EINVAL (unknown flags) with no work done: the trap's own cost. */
	return syscall(__NR_kvmng_run, ~0U) == -1 && errno == EINVAL;
}

static int op_getpid(void)
{
	return syscall(SYS_getpid) > 0;
}

static struct stats measure(int (*op)(void), int n, uint64_t *samples)
{
	struct stats s;
	for (int i = 0; i < n / 10; i++)	/* warm up */
		op();
	for (int i = 0; i < n; i++) {
		uint64_t t0 = now_ns();
		if (!op()) {
			fprintf(stderr, "bench: the operation failed: %s\n", errname(errno));
			exit(1);
		}
		samples[i] = now_ns() - t0;
	}
	qsort(samples, n, sizeof(*samples), cmp_u64);
	s.min = samples[0];
	s.median = samples[n / 2];
	s.p99 = samples[(long)n * 99 / 100];
	return s;
}

int bench_main(int argc, char **argv)
{
	int n = 20000;
	for (int i = 1; i < argc; i++)
		if (argv[i][0] != '-')
			n = atoi(argv[i]);
	if (n < 100)
		n = 100;
	if (!kvmng_present()) {
		printf("bench: the kvmng syscalls answer ENOSYS (no kvmng kernel, no shim)\n");
		return 1;
	}
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0 || kvmng_create_vm(kvm, 0, 0) < 0 ||
	    (vcpu_fd = kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND)) < 0) {
		printf("bench: cannot set up a VM and vCPU: %s\n", errname(errno));
		return 1;
	}
	e = entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, &mp, sizeof(mp));

	uint64_t *samples = malloc(sizeof(*samples) * n);
	struct stats sys = measure(op_syscall, n, samples);
	struct stats io = measure(op_ioctl, n, samples);
	struct stats probe = measure(op_probe, n, samples);
	struct stats pid = measure(op_getpid, n, samples);
	free(samples);

	printf("# %d calls each; ns per call (clock_gettime around each call)\n", n);
	printf("%-44s %8s %8s %8s\n", "operation", "min", "median", "p99");
	printf("%-44s %8lu %8lu %8lu\n", "kvmng_vcpu_state(MP_STATE GET) syscall",
	       sys.min, sys.median, sys.p99);
	printf("%-44s %8lu %8lu %8lu\n", "ioctl(KVM_GET_MP_STATE) (raw syscall)", io.min, io.median, io.p99);
	printf("%-44s %8lu %8lu %8lu\n", "kvmng_run(~0) -> EINVAL (no work)", probe.min,
	       probe.median, probe.p99);
	printf("%-44s %8lu %8lu %8lu\n", "getpid() (syscall floor)", pid.min, pid.median,
	       pid.p99);
	printf("ratio syscall/ioctl (median): %.2f\n", (double)sys.median / io.median);
	printf("added per call over the ioctl (median): %ld ns\n",
	       (long)sys.median - (long)io.median);
	printf("cost of reaching the implementation (kvmng_run(~0) - getpid, median): %ld ns\n",
	       (long)probe.median - (long)pid.median);
	return 0;
}
