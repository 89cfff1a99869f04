// SPDX-License-Identifier: GPL-2.0
/* docs/api.md sections 2 and 3: nobody reaches a VM or a vCPU that is not
 * theirs through the syscalls, and the syscalls grant nothing the ioctls
 * refuse.  Every refusal is checked against the errno the spec documents,
 * and, where an ioctl could do the same thing, against the ioctl's own
 * refusal (kioctl: the raw syscall; ioctl(): what a preloaded shim
 * translates).  The same program runs through the trap on a stock kernel
 * and natively on a kvmng kernel.  The uid-changing cases need root: without
 * it they say SKIP loudly. */
#include "harness.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <grp.h>
#include <linux/landlock.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_add_rule 445
#define SYS_landlock_restrict_self 446
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif

#define NOBODY 65534

/* ---- passing fds between processes ---- */

/* A one-byte message with room for up to 4 fds of SCM_RIGHTS. */
struct fd_msg {
	char byte;
	struct iovec iov;
	union {
		char buf[CMSG_SPACE(sizeof(int) * 4)];
		struct cmsghdr align;
	} u;
	struct msghdr msg;
};

/* Points `m`'s message at its byte and at room for `n` fds. */
static void fd_msg_init(struct fd_msg *m, int n)
{
	memset(m, 0, sizeof(*m));
	m->byte = 'f';
	m->iov = (struct iovec){ .iov_base = &m->byte, .iov_len = 1 };
	m->msg = (struct msghdr){
		.msg_iov = &m->iov, .msg_iovlen = 1,
		.msg_control = m->u.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * n),
	};
}

static int send_fds(int sock, const int *fds, int n)
{
	struct fd_msg m;
	struct cmsghdr *c;

	fd_msg_init(&m, n);
	c = CMSG_FIRSTHDR(&m.msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
	return sendmsg(sock, &m.msg, 0) == 1 ? 0 : -1;
}

static int recv_fds(int sock, int *fds, int n)
{
	struct fd_msg m;
	struct cmsghdr *c;

	fd_msg_init(&m, n);
	if (recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC) != 1)
		return -1;
	c = CMSG_FIRSTHDR(&m.msg);
	if (!c || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int) * n))
		return -1;
	memcpy(fds, CMSG_DATA(c), sizeof(int) * n);
	return 0;
}

/* Drops to uid/gid nobody (the caller has checked that it is root). */
static void become_nobody(void)
{
	REQUIRE(setgroups(0, NULL) == 0, "setgroups: %s", strerror(errno));
	REQUIRE(setresgid(NOBODY, NOBODY, NOBODY) == 0, "setresgid: %s", strerror(errno));
	REQUIRE(setresuid(NOBODY, NOBODY, NOBODY) == 0, "setresuid: %s", strerror(errno));
	REQUIRE(geteuid() == NOBODY, "euid is nobody");
}

/* Ends the current case as skipped, loudly, unless this process is root. */
static void require_root(void)
{
	if (geteuid() == 0)
		return;
	printf("# !!! SKIP %s: not root (uid %d), the uid-changing checks did not run\n",
	       case_name(), (int)geteuid());
	case_skip("not root: the uid-changing checks need it");
}

/* Forks with a socketpair between parent and child: the pid (0 in the
 * child), and in *sock this side's end (the other side's is closed). */
static pid_t fork_connected(int *sock)
{
	int sv[2];

	REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
		"socketpair: %s", strerror(errno));
	pid_t pid = fork();
	REQUIRE(pid >= 0, "fork");
	close(sv[pid == 0 ? 0 : 1]);
	*sock = sv[pid == 0 ? 1 : 0];
	return pid;
}

/* Waits for child `pid`: it must have exited 0 (`what` says what that
 * shows). */
static void reap(pid_t pid, const char *what)
{
	int status;

	REQUIRE(waitpid(pid, &status, 0) == pid, "waitpid");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s (status %#x)", what, status);
}

/* Closes this side of the socket (a child reading it until EOF goes on),
 * then reaps the child as reap() does. */
static void hang_up_and_reap(int sock, pid_t pid, const char *what)
{
	close(sock);
	reap(pid, what);
}

/*
 * What a process that holds another mm's VM, vCPU and /dev/kvm fds (however
 * it got them) must be refused.  `vm`, `vcpu` are the other process's fds
 * as this process numbers them.
 */
static void others_objects_are_refused(int vm, int vcpu)
{
	struct kvm_regs regs;
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	struct kvm_userspace_memory_region2 r = { .slot = 1, .guest_phys_addr = 0x100000,
						   .memory_size = 4096 };

	/* The bind calls refuse objects of another mm with EIO (5.2, 5.4)... */
	CHECK_ERR(kvmng_bind_vm(vm, 0), EIO);
	CHECK_ERR(kvmng_bind_vcpu(vcpu, 0), EIO);
	/* ...as KVM's own ioctls do, raw and through ioctl() (a shim). */
	CHECK_ERR(kioctl(vcpu, KVM_GET_REGS, &regs), EIO);
	CHECK_ERR(kioctl(vm, KVM_CREATE_VCPU, 7), EIO);
	CHECK_ERR(ioctl(vcpu, KVM_GET_REGS, &regs), EIO);
	CHECK_ERR(ioctl(vcpu, KVM_RUN, 0), EIO);
	CHECK_ERR(ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY), EIO);
	/* Nothing got bound by the refusals: every other call finds nothing. */
	CHECK_ERR(kvmng_create_vcpu(7, 0), EUNATCH);
	CHECK_ERR(kvmng_memory_map(&r, 1, 0), EUNATCH);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_LINE, 4, 1, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VM, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY, 0),
		  EUNATCH);
	CHECK_ERR(kvmng_run(0), ESRCH);
	CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), ESRCH);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_NMI, 0, 0, 0), ESRCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_MP_STATE, 0, 0), ESRCH);
}

/* The owner: a VM with vCPU 0 bound, then its fds sent over `sock`; waits
 * for the other side to finish (it closes the socket), then checks that
 * its own VM is untouched. */
static void owner(int sock)
{
	struct vm v;
	char byte;

	vm_setup(&v);
	int fds[3] = { v.kvm, v.vm, v.vcpu };
	REQUIRE(send_fds(sock, fds, 3) == 0, "sendmsg SCM_RIGHTS: %s", strerror(errno));
	while (read(sock, &byte, 1) > 0)
		;
	vm_load_real(&v, guest_real_pio, guest_real_pio_end - guest_real_pio);
	CHECK(run_once(&v) == KVM_EXIT_IO, "the owner's guest still runs");
}

/* The receiver: gets the owner's fds over `sock` (optionally as nobody
 * first), and is refused everything; then, with the received /dev/kvm
 * fd, may make a VM of its own (fd-based, as with the ioctl), which does
 * not let it bind the owner's. */
static void receiver(int sock, int drop_uid)
{
	int fds[3];

	if (drop_uid)
		become_nobody();
	REQUIRE(recv_fds(sock, fds, 3) == 0, "recvmsg SCM_RIGHTS: %s", strerror(errno));
	others_objects_are_refused(fds[1], fds[2]);
	/* The /dev/kvm fd was opened O_RDWR by its owner: the ioctl would make
	 * a VM with it, so kvmng_create_vm may too; the owner's VM stays out
	 * of reach (EIO comes before EEXIST, 5.2). */
	int own = kvmng_create_vm(fds[0], 0, 0);
	CHECK(own >= 0, "a VM of its own with the received /dev/kvm fd: %s", errname(errno));
	CHECK_ERR(kvmng_bind_vm(fds[1], 0), EIO);
	CHECK_ERR(kvmng_bind_vcpu(fds[2], 0), EIO);
	int vcpu = kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND);
	CHECK(vcpu >= 0, "a vCPU in its own VM: %s", errname(errno));
	/* Binding its own vCPU does not open the owner's. */
	CHECK_ERR(kvmng_bind_vcpu(fds[2], 0), EIO);
}

static void scm_rights_case(int drop_uid)
{
	int sock;

	if (drop_uid)
		require_root();
	/* Forked before the VM exists: nothing of it is inherited. */
	pid_t pid = fork_connected(&sock);
	if (pid == 0) {
		receiver(sock, drop_uid);
		_exit(0);
	}
	owner(sock);
	hang_up_and_reap(sock, pid, "the receiver ran its checks");
}

TEST(same_uid_process_with_scm_rights_fds_reaches_nothing)
{
	scm_rights_case(0);
}

TEST(other_uid_process_with_scm_rights_fds_reaches_nothing)
{
	scm_rights_case(1);
}

/*
 * pidfd_getfd(): a process that may ptrace the owner (its parent, same
 * uid) copies the owner's fds; it still reaches nothing.  One that may not
 * (nobody, against a root owner) does not even get the fds (EPERM).
 */
static void getfd_case(int drop_uid)
{
	int sock, status, nums[3];
	char byte;

	if (drop_uid)
		require_root();
	pid_t pid = fork_connected(&sock);
	if (pid == 0) {
		struct vm v;

		vm_setup(&v);
		nums[0] = v.kvm;
		nums[1] = v.vm;
		nums[2] = v.vcpu;
		if (write(sock, nums, sizeof(nums)) != sizeof(nums))
			_exit(2);
		while (read(sock, &byte, 1) > 0)
			;
		vm_load_real(&v, guest_real_pio, guest_real_pio_end - guest_real_pio);
		_exit(run_once(&v) == KVM_EXIT_IO ? 0 : 3);
	}
	REQUIRE(read(sock, nums, sizeof(nums)) == sizeof(nums), "the owner's fd numbers");
	int pidfd = syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		printf("# !!! SKIP pidfd_open: %s\n", errname(errno));
		case_skip("pidfd_open unavailable");
	}
	if (drop_uid) {
		/* The fds are taken (or not) as nobody. */
		pid_t c = fork();
		REQUIRE(c >= 0, "fork");
		if (c == 0) {
			become_nobody();
			CHECK_ERR(syscall(SYS_pidfd_getfd, pidfd, nums[1], 0), EPERM);
			CHECK_ERR(syscall(SYS_pidfd_getfd, pidfd, nums[2], 0), EPERM);
			_exit(0);
		}
		reap(c, "nobody's checks ran");
	} else {
		int vm = syscall(SYS_pidfd_getfd, pidfd, nums[1], 0);
		int vcpu = syscall(SYS_pidfd_getfd, pidfd, nums[2], 0);
		if (vm < 0 || vcpu < 0) {
			int e = errno;
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			printf("# !!! SKIP pidfd_getfd: %s\n", errname(e));
			case_skip("pidfd_getfd refused (ptrace policy?)");
		}
		others_objects_are_refused(vm, vcpu);
	}
	hang_up_and_reap(sock, pid, "the owner's guest still runs");
}

TEST(same_uid_process_with_pidfd_getfd_fds_reaches_nothing)
{
	getfd_case(0);
}

TEST(other_uid_process_cannot_take_the_fds_with_pidfd_getfd)
{
	getfd_case(1);
}

/* ---- an unbound thread of the same mm ---- */

struct thread_args {
	int vcpu;
};

static void *unbound_thread(void *p)
{
	struct thread_args *a = p;
	struct kvm_regs regs;
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));

	/* No binding of its own: every vCPU-scope call is ESRCH (1, 5.5-5.9)... */
	CHECK_ERR(kvmng_run(0), ESRCH);
	CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), ESRCH);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_INTERRUPT, 32, 0, 0), ESRCH);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_NMI, 0, 0, 0), ESRCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_MP_STATE, 0, 0), ESRCH);
	/* ...and it cannot take the vCPU another thread holds (5.4). */
	CHECK_ERR(kvmng_bind_vcpu(a->vcpu, 0), EBUSY);
	CHECK_ERR(kvmng_run(0), ESRCH);
	/* Creating a vCPU with BIND while unbound is allowed: it gets its own. */
	int own = kvmng_create_vcpu(1, KVMNG_CREATE_VCPU_BIND);
	CHECK(own >= 0, "an unbound thread creates and binds vCPU 1: %s", errname(errno));
	/* Holding vCPU 1 gives it no way into vCPU 0. */
	CHECK_ERR(kvmng_bind_vcpu(a->vcpu, 0), EBUSY);
	return NULL;
}

TEST(an_unbound_thread_cannot_touch_a_bound_vcpu)
{
	struct vm v;
	struct thread_args a;
	pthread_t t;

	vm_setup(&v);
	vm_load_real(&v, guest_real_pio, guest_real_pio_end - guest_real_pio);
	a.vcpu = v.vcpu;
	REQUIRE(pthread_create(&t, NULL, unbound_thread, &a) == 0, "pthread_create");
	pthread_join(t, NULL);
	/* The owner thread still has its vCPU and its guest runs. */
	CHECK(run_once(&v) == KVM_EXIT_IO, "the bound thread's guest runs");
}

/* ---- creating a VM without access to /dev/kvm ---- */

TEST(read_only_dev_kvm_creates_no_vm)
{
	int ro = open("/dev/kvm", O_RDONLY | O_CLOEXEC);

	REQUIRE(ro >= 0, "open /dev/kvm read-only: %s", strerror(errno));
	CHECK_ERR(kvmng_create_vm(ro, 0, 0), EACCES);
	/* Refused before anything else: nothing is bound, no system scope. */
	CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0), EUNATCH);
	/* Flags are still checked first. */
	CHECK_ERR(kvmng_create_vm(ro, 0, 2), EINVAL);
}

TEST(a_user_without_dev_kvm_creates_no_vm)
{
	struct stat st;

	require_root();
	REQUIRE(stat("/dev/kvm", &st) == 0, "stat /dev/kvm: %s", strerror(errno));
	pid_t pid = fork();
	REQUIRE(pid >= 0, "fork");
	if (pid == 0) {
		become_nobody();
		int rw = open("/dev/kvm", O_RDWR | O_CLOEXEC);
		int ro = open("/dev/kvm", O_RDONLY | O_CLOEXEC);
		if (rw >= 0) {
			/* /dev/kvm is open to everyone: the ioctl and the syscall
			 * both work for nobody, and must agree. */
			printf("# /dev/kvm mode %o lets nobody open it read-write\n",
			       st.st_mode & 07777);
			CHECK(kvmng_create_vm(rw, 0, 0) >= 0, "as the ioctl would: %s",
			      errname(errno));
			_exit(0);
		}
		CHECK(errno == EACCES, "nobody cannot open /dev/kvm read-write (%s)",
		      errname(errno));
		/* No fd at all: nothing to create a VM with. */
		CHECK_ERR(kvmng_create_vm(-1, 0, 0), EBADF);
		CHECK_ERR(kvmng_create_vm(closed_fd(), 0, 0), EBADF);
		/* An fd that is not /dev/kvm (the syscall checks the device). */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		CHECK_ERR(kvmng_create_vm(null, 0, 0), ENODEV);
		if (ro >= 0)
			CHECK_ERR(kvmng_create_vm(ro, 0, 0), EACCES);
		CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);
		CHECK_ERR(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0), EUNATCH);
		_exit(0);
	}
	reap(pid, "nobody's checks ran");
}

/* ---- an LSM denying the ioctls denies the calls (api.md section 3) ---- */

/* Restricts this process with a Landlock ruleset that handles reading,
 * writing and ioctl on files and grants /dev/kvm reading and writing only:
 * ioctl(2) on a /dev/kvm fd opened from now on fails with EACCES.  Without
 * Landlock ABI 5 (LANDLOCK_ACCESS_FS_IOCTL_DEV, Linux 6.10) the case is
 * skipped, loudly. */
static void landlock_deny_kvm_ioctl(void)
{
	struct landlock_ruleset_attr attr = {
		.handled_access_fs = LANDLOCK_ACCESS_FS_READ_FILE |
				     LANDLOCK_ACCESS_FS_WRITE_FILE |
				     LANDLOCK_ACCESS_FS_IOCTL_DEV,
	};
	struct landlock_path_beneath_attr rule = {
		.allowed_access = LANDLOCK_ACCESS_FS_READ_FILE |
				  LANDLOCK_ACCESS_FS_WRITE_FILE,
	};
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0,
			   LANDLOCK_CREATE_RULESET_VERSION);

	if (abi < 5) {
		printf("# !!! SKIP %s: Landlock ABI %ld (5 needed: IOCTL_DEV): %s\n",
		       case_name(), abi, abi < 0 ? strerror(errno) : "too old");
		case_skip("no Landlock ABI 5");
	}
	int ruleset = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	REQUIRE(ruleset >= 0, "landlock_create_ruleset: %s", strerror(errno));
	rule.parent_fd = open("/dev/kvm", O_PATH | O_CLOEXEC);
	REQUIRE(rule.parent_fd >= 0, "open /dev/kvm O_PATH: %s", strerror(errno));
	REQUIRE(syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH,
			&rule, 0) == 0, "landlock_add_rule: %s", strerror(errno));
	REQUIRE(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, "no_new_privs");
	REQUIRE(syscall(SYS_landlock_restrict_self, ruleset, 0) == 0,
		"landlock_restrict_self: %s", strerror(errno));
	close(rule.parent_fd);
	close(ruleset);
}

TEST(an_lsm_denying_dev_kvm_ioctls_denies_kvmng_create_vm)
{
	landlock_deny_kvm_ioctl();
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	REQUIRE(kvm >= 0, "open /dev/kvm read-write under the ruleset: %s", strerror(errno));
	/* The ioctls are denied ... */
	CHECK_ERR(kioctl(kvm, KVM_GET_API_VERSION, 0), EACCES);
	CHECK_ERR(kioctl(kvm, KVM_CREATE_VM, 0), EACCES);
	/* ... and so is the call that stands for KVM_CREATE_VM, with the
	 * same errno; nothing is bound, so no system scope either. */
	CHECK_ERR(kvmng_create_vm(kvm, 0, 0), EACCES);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_SUPPORTED_CPUID, 0, 0), EUNATCH);
	CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);
	CHECK_ERR(kvmng_run(0), ESRCH);
	close(kvm);
}
