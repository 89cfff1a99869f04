/* SPDX-License-Identifier: GPL-2.0 */
/* Shared by the trap-rule helper programs (run by shim/kvmshim/tests/
 * kvm_trap_*.rs): one "ok"/"FAIL" line per check, exit 1 on any FAIL. */
#ifndef TRAP_COMMON_H
#define TRAP_COMMON_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "kvmng_syscalls.h"

static int failures __attribute__((unused));

#define EXPECT(cond, ...) do {						\
	if (cond) {							\
		printf("ok: " __VA_ARGS__);				\
	} else {							\
		printf("FAIL (%s:%d): ", __FILE__, __LINE__);		\
		printf(__VA_ARGS__);					\
		failures++;						\
	}								\
	printf("\n");							\
	fflush(stdout);							\
} while (0)

static inline const char *ename(int e)
{
	const char *n = e ? strerrorname_np(e) : "0";
	return n ? n : "E?";
}

/* The errno name of the probe: "EINVAL" (present) or "ENOSYS". */
static inline const char *probe(void)
{
	errno = 0;
	long r = syscall(__NR_kvmng_run, ~0U);
	return r == -1 ? ename(errno) : "0";
}

/* A field of /proc/self/status (or of a task's), or -1. */
static inline long status_field(const char *path, const char *field)
{
	char line[256];
	long value = -1;
	size_t n = strlen(field);
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			value = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return value;
}

/* A VM and a bound vCPU through the syscalls; 0 on success. */
static inline int make_vm_and_vcpu(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		return -1;
	if (kvmng_create_vm(kvm, 0, 0) < 0)
		return -1;
	if (kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND) < 0)
		return -1;
	return 0;
}

static inline int get_regs_ok(void)
{
	struct kvm_regs regs;
	struct kvmng_state_entry e = {
		.kind = KVMNG_STATE_REGS, .op = KVMNG_STATE_GET,
		.addr = (unsigned long)&regs, .size = sizeof(regs),
	};
	return kvmng_vcpu_state(&e, 1, 0) == 1 && e.result == 0;
}
#endif
