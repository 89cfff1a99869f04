// SPDX-License-Identifier: GPL-2.0
/* docs/api.md sections 1-3, 5.1-5.4: the permission model, what the
 * create calls return, and the binding rules. */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>

static void check_fd(int fd, const char *name)
{
	char path[64], link[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	link[n < 0 ? 0 : n] = 0;
	CHECK(!strcmp(link, name), "fd %d is %s (%s)", fd, name, link);
	CHECK((fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR, "%s is O_RDWR", name);
	CHECK(fcntl(fd, F_GETFD) & FD_CLOEXEC, "%s is O_CLOEXEC", name);
}

/* The lowest free fd number: a call that "creates nothing" leaves it. */
static int next_fd(void)
{
	return lowest_free_fd();
}

TEST(create_vm_needs_dev_kvm_read_write)
{
	int ro = open("/dev/kvm", O_RDONLY | O_CLOEXEC);
	int wo = open("/dev/kvm", O_WRONLY | O_CLOEXEC);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int file = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	int closed = closed_fd();

	REQUIRE(ro >= 0 && null >= 0 && file >= 0, "open: %s", strerror(errno));
	CHECK_ERR(kvmng_create_vm(-1, 0, 0), EBADF);
	CHECK_ERR(kvmng_create_vm(closed, 0, 0), EBADF);
	CHECK_ERR(kvmng_create_vm(null, 0, 0), ENODEV);
	CHECK_ERR(kvmng_create_vm(file, 0, 0), ENODEV);
	CHECK_ERR(kvmng_create_vm(ro, 0, 0), EACCES);
	if (wo >= 0)
		CHECK_ERR(kvmng_create_vm(wo, 0, 0), EACCES);
	/* Flags first, then the fd checks in order. */
	CHECK_ERR(kvmng_create_vm(ro, 0, 1), EINVAL);
	/* Nothing got bound by the failures. */
	CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);

	int kvm = open_kvm();
	/* An unknown machine type: KVM_CREATE_VM's EINVAL, nothing bound. */
	CHECK_ERR(kvmng_create_vm(kvm, 0xdead, 0), EINVAL);
	CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);

	int vm = kvmng_create_vm(kvm, 0, 0);
	CHECK(vm >= 0, "kvmng_create_vm: %s", errname(errno));
	check_fd(vm, "anon_inode:kvm-vm");
	/* One bound VM per mm: EEXIST, and nothing is created. */
	int before = next_fd();
	CHECK_ERR(kvmng_create_vm(kvm, 0, 0), EEXIST);
	CHECK(next_fd() == before, "the refused create made no fd");
	/* The fd checks come before EEXIST. */
	CHECK_ERR(kvmng_create_vm(ro, 0, 0), EACCES);
	CHECK_ERR(kvmng_create_vm(null, 0, 0), ENODEV);

	int vcpu = kvmng_create_vcpu(0, 0);
	CHECK(vcpu >= 0, "kvmng_create_vcpu: %s", errname(errno));
	check_fd(vcpu, "anon_inode:kvm-vcpu:0");
	/* Created without BIND: the thread is not bound. */
	CHECK_ERR(kvmng_run(0), ESRCH);
}

TEST(bind_vm_rules)
{
	int kvm = open_kvm();
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	int closed = closed_fd();

	/* A VM made with the legacy ioctl can be bound. */
	int vm1 = kioctl(kvm, KVM_CREATE_VM, 0);
	REQUIRE(vm1 >= 0, "KVM_CREATE_VM: %s", strerror(errno));
	CHECK_RET(kvmng_bind_vm(vm1, 0), 0);
	CHECK_RET(kvmng_bind_vm(vm1, 0), 0);	/* again: no change */
	int vcpu = kvmng_create_vcpu(0, 0);
	CHECK(vcpu >= 0, "create_vcpu in the ioctl-made VM: %s", errname(errno));

	/* A second VM of the mm (through control: not bound). */
	long vm2 = kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_CREATE_VM, 0, 0);
	CHECK(vm2 >= 0, "kvmng_control(SYSTEM, KVM_CREATE_VM): %s", errname(errno));
	CHECK_ERR(kvmng_bind_vm(vm2, 0), EEXIST);
	/* Wrong kinds of fd, closed fds. */
	CHECK_ERR(kvmng_bind_vm(closed, 0), EBADF);
	CHECK_ERR(kvmng_bind_vm(-2, 0), EBADF);
	CHECK_ERR(kvmng_bind_vm(kvm, 0), EINVAL);
	CHECK_ERR(kvmng_bind_vm(null, 0), EINVAL);
	CHECK_ERR(kvmng_bind_vm(vcpu, 0), EINVAL);
	/* Unbind, then bind the other one. */
	CHECK_RET(kvmng_bind_vm(KVMNG_UNBIND, 0), 0);
	CHECK_ERR(kvmng_create_vcpu(1, 0), EUNATCH);
	CHECK_RET(kvmng_bind_vm(KVMNG_UNBIND, 0), 0);	/* nothing bound: fine */
	CHECK_RET(kvmng_bind_vm(vm2, 0), 0);
	int v2cpu = kvmng_create_vcpu(0, 0);
	CHECK(v2cpu >= 0, "vCPU 0 of the second VM: %s", errname(errno));
	CHECK_ERR(kvmng_bind_vm(vm1, 0), EEXIST);
}

TEST(unbinding_the_vm_keeps_vcpu_bindings)
{
	struct vm v;
	struct kvm_regs regs;
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));

	vm_setup(&v);
	CHECK_RET(kvmng_bind_vm(KVMNG_UNBIND, 0), 0);
	CHECK_RET(kvmng_vcpu_state(&e, 1, 0), 1);
	CHECK_ERR(kvmng_create_vcpu(1, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VM, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY, 0), EUNATCH);
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_REGS, (unsigned long)&regs, 0), 0);
	/* Rebinding the same VM through its fd works again. */
	CHECK_RET(kvmng_bind_vm(v.vm, 0), 0);
	CHECK(kvmng_create_vcpu(1, 0) >= 0, "create_vcpu after rebinding: %s", errname(errno));
}

TEST(create_vcpu_rules)
{
	int kvm = open_kvm();
	CHECK(kvmng_create_vm(kvm, 0, 0) >= 0, "create_vm: %s", errname(errno));
	int v0 = kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND);
	CHECK(v0 >= 0, "create_vcpu(0, BIND): %s", errname(errno));
	/* Already bound: EBUSY, and vCPU 1 is not created. */
	CHECK_ERR(kvmng_create_vcpu(1, KVMNG_CREATE_VCPU_BIND), EBUSY);
	int v1 = kvmng_create_vcpu(1, 0);
	CHECK(v1 >= 0, "vCPU 1 was not created by the refused call: %s", errname(errno));
	/* KVM_CREATE_VCPU's own errors. */
	CHECK_ERR(kvmng_create_vcpu(0, 0), EEXIST);
	CHECK_ERR(kvmng_create_vcpu(1UL << 31, 0), EINVAL);
	/* The flags check comes before the EBUSY check. */
	CHECK_ERR(kvmng_create_vcpu(2, 2), EINVAL);
}

struct thread_arg {
	int fd;
	int result, err;
	int hold;		/* keep the binding until released */
	volatile int bound, release;
};

static void *bind_in_thread(void *p)
{
	struct thread_arg *a = p;
	errno = 0;
	a->result = kvmng_bind_vcpu(a->fd, 0);
	a->err = errno;
	a->bound = 1;
	while (a->hold && !a->release)
		usleep(1000);
	return NULL;
}

static int bind_elsewhere(int fd, int *err)
{
	struct thread_arg a = { .fd = fd };
	pthread_t t;
	pthread_create(&t, NULL, bind_in_thread, &a);
	pthread_join(t, NULL);
	*err = a.err;
	return a.result;
}

TEST(bind_vcpu_rules)
{
	struct vm v;
	int err = 0;
	struct kvm_regs regs;
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));

	vm_setup(&v);
	int closed = closed_fd();
	int v1 = kvmng_create_vcpu(1, 0);
	REQUIRE(v1 >= 0, "create vCPU 1: %s", errname(errno));

	CHECK_RET(kvmng_bind_vcpu(v.vcpu, 0), 0);	/* own vCPU again */
	CHECK_ERR(kvmng_bind_vcpu(closed, 0), EBADF);
	CHECK_ERR(kvmng_bind_vcpu(-2, 0), EBADF);
	CHECK_ERR(kvmng_bind_vcpu(v.vm, 0), EINVAL);
	CHECK_ERR(kvmng_bind_vcpu(v.kvm, 0), EINVAL);
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	CHECK_ERR(kvmng_bind_vcpu(null, 0), EINVAL);

	/* Another thread cannot take a vCPU this thread holds. */
	CHECK(bind_elsewhere(v.vcpu, &err) == -1 && err == EBUSY,
	      "another thread binding our vCPU: EBUSY (%s)", errname(err));
	CHECK_RET(kvmng_vcpu_state(&e, 1, 0), 1);	/* we keep it */

	/* A thread that holds vCPU 1 makes ours EBUSY, and we keep vCPU 0. */
	struct thread_arg holder = { .fd = v1, .hold = 1 };
	pthread_t t;
	pthread_create(&t, NULL, bind_in_thread, &holder);
	while (!holder.bound)
		usleep(1000);
	CHECK(holder.result == 0, "the other thread bound vCPU 1 (%s)", errname(holder.err));
	CHECK_ERR(kvmng_bind_vcpu(v1, 0), EBUSY);
	CHECK_RET(kvmng_vcpu_state(&e, 1, 0), 1);
	/* Thread exit drops its binding: vCPU 1 becomes bindable. */
	holder.release = 1;
	pthread_join(t, NULL);
	CHECK_RET(kvmng_bind_vcpu(v1, 0), 0);	/* replaces vCPU 0 */
	/* vCPU 0 is free now: another thread can bind it. */
	CHECK(bind_elsewhere(v.vcpu, &err) == 0, "vCPU 0 free after rebinding (%s)",
	      errname(err));
	/* Unbind. */
	CHECK_RET(kvmng_bind_vcpu(KVMNG_UNBIND, 0), 0);
	CHECK_ERR(kvmng_run(0), ESRCH);
	CHECK_RET(kvmng_bind_vcpu(KVMNG_UNBIND, 0), 0);
	CHECK(bind_elsewhere(v1, &err) == 0, "vCPU 1 free after unbinding (%s)", errname(err));
}

static void *clone_vm_child(void *p)
{
	(void)p;
	/* A thread shares the mm: the bound VM, but no bound vCPU. */
	CHECK_ERR(kvmng_run(0), ESRCH);
	int fd = kvmng_create_vcpu(3, KVMNG_CREATE_VCPU_BIND);
	CHECK(fd >= 0, "a thread creates a vCPU in the shared VM: %s", errname(errno));
	return NULL;
}

TEST(threads_share_the_vm_not_the_vcpu)
{
	struct vm v;
	pthread_t t;

	vm_setup(&v);
	pthread_create(&t, NULL, clone_vm_child, NULL);
	pthread_join(t, NULL);
}

TEST(a_forked_child_reaches_nothing_of_the_parent)
{
	struct vm v;
	int status;

	vm_setup(&v);
	pid_t pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		struct kvm_regs regs;
		struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET,
						   &regs, sizeof(regs));
		CHECK_ERR(kvmng_create_vcpu(5, 0), EUNATCH);
		CHECK_ERR(kvmng_run(0), ESRCH);
		CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), ESRCH);
		CHECK_ERR(kvmng_bind_vm(v.vm, 0), EIO);
		CHECK_ERR(kvmng_bind_vcpu(v.vcpu, 0), EIO);
		/* The legacy ioctls refuse the inherited fds the same way. */
		CHECK_ERR(kioctl(v.vcpu, KVM_GET_REGS, &regs), EIO);
		/* The child can make its own VM with the inherited /dev/kvm. */
		int vm = kvmng_create_vm(v.kvm, 0, 0);
		CHECK(vm >= 0, "the child creates its own VM: %s", errname(errno));
		CHECK(kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND) >= 0,
		      "the child creates and binds vCPU 0: %s", errname(errno));
		_exit(0);
	}
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	/* The parent still has its bindings. */
	struct kvm_regs regs;
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	CHECK_RET(kvmng_vcpu_state(&e, 1, 0), 1);
	CHECK(kvmng_create_vcpu(1, 0) >= 0, "the parent's VM is still bound: %s", errname(errno));
}

TEST(closing_fds_keeps_the_bindings)
{
	struct vm v;

	vm_setup(&v);
	vm_load_real(&v, guest_real_pio, guest_real_pio_end - guest_real_pio);
	close(v.vm);
	close(v.vcpu);
	close(v.kvm);
	/* The VM and the vCPU live on through the bindings. */
	CHECK(run_once(&v) == KVM_EXIT_IO, "the guest runs after every fd is closed");
	CHECK(kvmng_create_vcpu(1, 0) >= 0, "VM-scope calls work: %s", errname(errno));
	CHECK(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0) == KVM_API_VERSION,
	      "system scope works with no /dev/kvm fd open: %s", errname(errno));
}
