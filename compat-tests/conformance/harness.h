/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The conformance suite's harness: test cases register themselves with
 * TEST(); main() runs each in a forked child (a fresh mm: no bound VM, no
 * bound vCPU, as docs/api.md section 2 says of fork), so a crash or a
 * binding left behind cannot leak into the next case.  Every CHECK is one
 * TAP test point; the summary line is "conformance: N passed, M failed,
 * K skipped".
 */
#ifndef KVMNG_CONFORMANCE_HARNESS_H
#define KVMNG_CONFORMANCE_HARNESS_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvmng_syscalls.h"

struct test_case {
	const char *name;
	void (*fn)(void);
	int needs_kvm;		/* 0: runs without /dev/kvm */
};

#define TEST_CASE(fn_, needs_kvm_)						\
	static void fn_(void);							\
	static const struct test_case test_case_##fn_				\
		__attribute__((used, section("kvmng_tests"), aligned(8))) =	\
		{ #fn_, fn_, needs_kvm_ };					\
	static void fn_(void)

/* A case that needs /dev/kvm read-write (skipped without it). */
#define TEST(fn_) TEST_CASE(fn_, 1)
/* A case that runs on any machine. */
#define TEST_NOKVM(fn_) TEST_CASE(fn_, 0)

/* Records one test point; prints it (and the reason when it failed). */
void check_point(int ok, const char *file, int line, const char *what,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Ends the current case as failed (after a failed REQUIRE). */
void case_abort(void) __attribute__((noreturn));
/* Skips the rest of the current case, recording one skipped point. */
void case_skip(const char *why) __attribute__((noreturn));
/* The current case's name. */
const char *case_name(void);
/* Names an errno ("EINVAL"). */
const char *errname(int e);

#define CHECK(cond, ...)							\
	check_point(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

/* The call must fail with errno e. Evaluates the call once. */
#define CHECK_ERR(call, e) do {							\
	errno = 0;								\
	long r_ = (long)(call);							\
	int e_ = errno;								\
	check_point(r_ == -1 && e_ == (e), __FILE__, __LINE__, #call,		\
		    "expected -1/%s, got %ld/%s", errname(e), r_,		\
		    r_ == -1 ? errname(e_) : "-");				\
} while (0)

/* The call must return v. */
#define CHECK_RET(call, v) do {							\
	errno = 0;								\
	long r_ = (long)(call);							\
	int e_ = errno;								\
	check_point(r_ == (long)(v), __FILE__, __LINE__, #call,			\
		    "expected %ld, got %ld/%s", (long)(v), r_,			\
		    r_ == -1 ? errname(e_) : "-");				\
} while (0)

/* A setup step: on failure the case ends here (counted as one failure). */
#define REQUIRE(cond, ...) do {							\
	if (!(cond)) {								\
		check_point(0, __FILE__, __LINE__, #cond, __VA_ARGS__);		\
		case_abort();							\
	}									\
} while (0)

/*
 * The legacy ioctl as the kernel answers it: a raw syscall, so that a
 * preloaded shim's ioctl() interposer (which translates KVM ioctls) is
 * not what the suite compares the kvmng calls against.
 */
#define kioctl(fd, cmd, arg) syscall(SYS_ioctl, (int)(fd), (unsigned long)(cmd), (arg))

/* ---- shared helpers (helpers.c) ---- */

#define GUEST_LOAD_ADDR 0x1000
#define GUEST_LOW_MEM	0x10000
#define GUEST_MMIO_REAL 0xD0000
#define GUEST_REPORT_PORT 0x10
#define GUEST_CONSOLE_PORT 0xE9

struct vm {
	int kvm;		/* /dev/kvm, O_RDWR */
	int vm;			/* from kvmng_create_vm */
	int vcpu;		/* from kvmng_create_vcpu, bound to the creator */
	struct kvm_run *run;	/* mmap of the vCPU fd */
	size_t run_size;
	uint8_t *mem;		/* GUEST_LOW_MEM bytes at GPA 0 (slot 0) */
};

/* /dev/kvm opened O_RDWR | O_CLOEXEC (REQUIREd). */
int open_kvm(void);
/* A VM bound to this mm, slot 0 = GUEST_LOW_MEM, vCPU 0 bound to the
 * calling thread and its kvm_run mapped. */
void vm_setup(struct vm *v);
/* Puts `code` at GUEST_LOAD_ADDR and the vCPU in real mode at it, through
 * kvmng_vcpu_state. */
void vm_load_real(struct vm *v, const void *code, size_t len);
/* kvmng_run(0) once (EINTR retried); the exit reason. */
int run_once(struct vm *v);
/* One state entry. */
struct kvmng_state_entry entry(uint32_t kind, uint32_t op, void *buf, uint32_t size);
/* 1 when the kvmng calls are emulated: libkvmshim.so is preloaded and its
 * SIGSYS trap carries them out (docs/trap.md); 0 when they are the
 * kernel's own (or absent). */
int kvmng_emulated(void);
/* 1 when libkvmshim.so is preloaded and translates KVM ioctls (a mode
 * other than passthrough, docs/shim.md). */
int shim_translates_ioctls(void);
/* An fd number that is not open (and will not be soon). */
int closed_fd(void);
/* The lowest free fd number: the next fd a call would create. */
int lowest_free_fd(void);
/* A page that was mapped and has been unmapped. */
void *unmapped_page(void);

/* Guest binaries (guests.S). */
extern const unsigned char guest_real_pio[], guest_real_pio_end[];
extern const unsigned char guest_real_mmio[], guest_real_mmio_end[];
extern const unsigned char guest_pio_loop[], guest_pio_loop_end[];

#endif
