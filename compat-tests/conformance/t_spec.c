// SPDX-License-Identifier: GPL-2.0
/* Rules of docs/api.md that a reader from outside found unstated, now
 * decided: what KVM_CAP_KVMNG says under the emulation (4), the fds the
 * emulation needs (6), what the preload shim does to bindings (6), and how
 * a VM's destruction is observed (2). */
#include "harness.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* api.md 4: KVM_CAP_KVMNG is what the kernel implements: KVMNG_SYSCALLS_ALL
 * on a kvmng kernel, 0 where the calls are emulated. Every path that asks
 * gives the same answer. */
TEST(cap_kvmng_tells_native_from_emulated)
{
	struct vm v;

	vm_setup(&v);
	long dev = kioctl(v.kvm, KVM_CHECK_EXTENSION, KVM_CAP_KVMNG);
	long vmfd = kioctl(v.vm, KVM_CHECK_EXTENSION, KVM_CAP_KVMNG);
	long sys = kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_CHECK_EXTENSION, KVM_CAP_KVMNG, 0);
	long vmscope = kvmng_control(KVMNG_SCOPE_VM, KVM_CHECK_EXTENSION, KVM_CAP_KVMNG, 0);
	CHECK(dev == vmfd && vmfd == sys && sys == vmscope,
	      "one answer: /dev/kvm %ld, VM fd %ld, system scope %ld, VM scope %ld", dev, vmfd,
	      sys, vmscope);
	long want = kvmng_emulated() ? 0 : KVMNG_SYSCALLS_ALL;
	CHECK(dev == want, "%s: %ld, expected %#lx", kvmng_emulated() ? "emulated" : "native",
	      dev, want);
}

/* The /dev/null fds that fill the table, most recent last. */
static int fillers[256];
static int nfillers;

/* Opens /dev/null until the fd table is full (the soft limit lowered to
 * 128 first), then closes `keep_free` of those fds again. */
static void fill_fd_table(int keep_free)
{
	struct rlimit lim;

	REQUIRE(getrlimit(RLIMIT_NOFILE, &lim) == 0, "getrlimit");
	lim.rlim_cur = lim.rlim_max < 128 ? lim.rlim_max : 128;
	REQUIRE(setrlimit(RLIMIT_NOFILE, &lim) == 0, "setrlimit: %s", strerror(errno));
	for (;;) {
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			REQUIRE(errno == EMFILE, "open: %s", strerror(errno));
			break;
		}
		REQUIRE(nfillers < 256, "more than 256 fds");
		fillers[nfillers++] = fd;
	}
	REQUIRE(nfillers >= keep_free, "only %d fds to free", nfillers);
	for (int i = 0; i < keep_free; i++)
		close(fillers[--nfillers]);
}

/* api.md 5.2, 5.4 and 6: binding needs no fd in the kernel; the emulation
 * needs one for its private duplicate, and fails with EMFILE without one,
 * leaving nothing bound. */
TEST(bind_calls_and_a_full_fd_table)
{
	int kvm = open_kvm();
	int vm = kioctl(kvm, KVM_CREATE_VM, 0);
	REQUIRE(vm >= 0, "KVM_CREATE_VM: %s", errname(errno));
	int emulated = kvmng_emulated();

	fill_fd_table(0);
	if (emulated) {
		CHECK_ERR(kvmng_bind_vm(vm, 0), EMFILE);
		CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);	/* nothing bound */
		fill_fd_table(1);
	}
	CHECK_RET(kvmng_bind_vm(vm, 0), 0);

	int vcpu = kioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0 && errno == EMFILE) {
		fill_fd_table(1);
		vcpu = kioctl(vm, KVM_CREATE_VCPU, 0);
	}
	REQUIRE(vcpu >= 0, "KVM_CREATE_VCPU: %s", errname(errno));
	fill_fd_table(0);
	if (emulated) {
		CHECK_ERR(kvmng_bind_vcpu(vcpu, 0), EMFILE);
		CHECK_ERR(kvmng_run(0), ESRCH);			/* nothing bound */
		fill_fd_table(1);
	}
	CHECK_RET(kvmng_bind_vcpu(vcpu, 0), 0);
}

/* api.md 5.1, 5.3 and 6: with exactly one free fd, creating and binding
 * succeeds in the kernel; the emulation needs a second one and fails with
 * EMFILE, the new object destroyed and nothing bound. */
TEST(create_calls_with_one_free_fd)
{
	int kvm = open_kvm();
	int emulated = kvmng_emulated();

	fill_fd_table(1);
	if (emulated) {
		CHECK_ERR(kvmng_create_vm(kvm, 0, 0), EMFILE);
		CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);	/* no VM bound */
		fill_fd_table(2);
	}
	int vm = kvmng_create_vm(kvm, 0, 0);
	CHECK(vm >= 0, "kvmng_create_vm: %s", errname(errno));

	fill_fd_table(1);
	if (emulated) {
		CHECK_ERR(kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND), EMFILE);
		CHECK_ERR(kvmng_run(0), ESRCH);			/* nothing bound */
		CHECK_ERR(kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND), EMFILE); /* id 0 free */
		fill_fd_table(2);
	}
	int vcpu = kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND);
	CHECK(vcpu >= 0, "kvmng_create_vcpu(0, BIND): %s", errname(errno));
}

/* api.md 6, the preload shim: ioctl(KVM_CREATE_VM) through a translating
 * shim is kvmng_create_vm, which binds the VM when none is bound; without
 * the shim (or in passthrough mode) the ioctl's VM is not bound. */
TEST(a_vm_made_by_ioctl_is_bound_only_under_the_shim)
{
	int kvm = open_kvm();
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);	/* libc's: the shim sees it */
	REQUIRE(vm >= 0, "ioctl(KVM_CREATE_VM): %s", strerror(errno));
	if (shim_translates_ioctls()) {
		CHECK_ERR(kvmng_create_vm(kvm, 0, 0), EEXIST);
	} else {
		int second = kvmng_create_vm(kvm, 0, 0);
		CHECK(second >= 0, "kvmng_create_vm: %s", errname(errno));
	}
}

/* api.md 2: a VM lives while its directory /sys/kernel/debug/kvm/<pid>-<fd>
 * (named by KVM at creation: the creating pid and the VM fd's number)
 * exists. */
TEST(vm_destruction_is_seen_in_debugfs)
{
	char dir[64];
	struct stat st;

	if (stat("/sys/kernel/debug/kvm", &st) != 0)
		case_skip("debugfs is not mounted at /sys/kernel/debug (or KVM has no directory)");
	int kvm = open_kvm();
	int vm = kvmng_create_vm(kvm, 0, 0);
	REQUIRE(vm >= 0, "kvmng_create_vm: %s", errname(errno));
	snprintf(dir, sizeof(dir), "/sys/kernel/debug/kvm/%d-%d", getpid(), vm);
	CHECK(stat(dir, &st) == 0, "%s exists while the VM lives", dir);
	close(vm);
	CHECK(stat(dir, &st) == 0, "the binding keeps the VM after close: %s", dir);
	CHECK_RET(kvmng_bind_vm(KVMNG_UNBIND, 0), 0);
	CHECK(stat(dir, &st) != 0 && errno == ENOENT, "%s is gone after the unbind", dir);
}
