/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvmng-stress: shared definitions (see stress.c for the scenarios and
 * docs/reliability.md for what they found).
 */
#ifndef KVMNG_STRESS_COMMON_H
#define KVMNG_STRESS_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "kvmng_syscalls.h"

/* The raw ioctl (never a preloaded shim's ioctl()). */
#define kioctl(fd, cmd, arg) syscall(SYS_ioctl, (int)(fd), (unsigned long)(cmd), (arg))

#define GUEST_MEM	0x10000
#define CODE_IO_LOOP	0x1000	/* l: out 0x10, al; jmp l */
#define CODE_SPIN	0x1100	/* jmp $ */

extern atomic_long failures;
extern int verbose;

#define FAIL(...) do {								\
	atomic_fetch_add(&failures, 1);						\
	fprintf(stderr, "kvmng-stress: FAIL %s:%d: ", __FILE__, __LINE__);	\
	fprintf(stderr, __VA_ARGS__);						\
	fputc('\n', stderr);							\
} while (0)

/* Monotonic seconds. */
double now(void);
/* A per-thread random number (xorshift, seeded per thread). */
uint64_t rnd(void);
/* Guest memory: every byte hlt, the two guests at their addresses. */
uint8_t *guest_memory(void);
/* Puts vCPU fd `fd` in real mode at `rip` (through `ioctl` when
 * `via_ioctl`, else the raw ioctl). 0 or -1. */
int vcpu_real_mode(int fd, uint64_t rip, int via_ioctl);
/* KVM_GET_VCPU_MMAP_SIZE, asked once. */
size_t run_size(int kvm);
/* Whether libkvmshim.so is mapped. */
int shim_loaded(void);
/* Open fds of this process, and its resident set in KiB. */
int fd_count(void);
/* Lists the open fds and what they are on stderr. */
void fd_dump(const char *why);
long rss_kib(void);

/* The scenarios: each returns its count of operations. */
long sc_max_vcpus(void);
long sc_hammer(double seconds);
long sc_signals(double seconds);
long sc_random_args(double seconds);
long sc_bind_churn(double seconds);
long sc_exit_mid_run(double seconds);
long sc_mm_teardown(double seconds);
long sc_fork_bound(double seconds);
long sc_task_hooks(double seconds);
int exec_check(void);
long sc_rmmod(double seconds, const char *load_cmd);

#endif
