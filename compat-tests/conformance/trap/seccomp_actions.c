// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel facts the exec design rests on (docs/trap.md), checked on
 * the running kernel, each in a fresh child, without the shim:
 *   notif-no-listener  SECCOMP_RET_USER_NOTIF whose listener is closed: ENOSYS
 *   trace-no-tracer    SECCOMP_RET_TRACE without a tracer: ENOSYS
 *   trap-beats-notif   TRAP and USER_NOTIF filters both match: SIGSYS
 *   trap-no-handler    TRAP with SIGSYS at SIG_DFL: killed by SIGSYS
 *   trap-blocked       TRAP with a handler but SIGSYS blocked: killed by SIGSYS
 *   trap-ignored       TRAP with SIGSYS ignored: killed by SIGSYS
 * Prints "<case>: <ENOSYS|errno name|SIGSYS handled|killed by signal N>".
 */
#include "common.h"
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

static int install(unsigned int action, unsigned int flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_kvmng_run, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, action),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = 4, .filter = f };
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static volatile int handled;
static void on_sys(int sig)
{
	(void)sig;
	handled = 1;
}

static void run(const char *name)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		struct sigaction sa = { .sa_handler = on_sys };
		if (!strcmp(name, "notif-no-listener")) {
			int fd = install(SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER);
			close(fd);
		} else if (!strcmp(name, "trace-no-tracer")) {
			install(SECCOMP_RET_TRACE, 0);
		} else if (!strcmp(name, "trap-beats-notif")) {
			sigaction(SIGSYS, &sa, NULL);
			install(SECCOMP_RET_TRAP, 0);
			int fd = install(SECCOMP_RET_USER_NOTIF, SECCOMP_FILTER_FLAG_NEW_LISTENER);
			close(fd);
		} else if (!strcmp(name, "trap-no-handler")) {
			install(SECCOMP_RET_TRAP, 0);
		} else if (!strcmp(name, "trap-blocked")) {
			sigaction(SIGSYS, &sa, NULL);
			sigset_t s;
			sigemptyset(&s);
			sigaddset(&s, SIGSYS);
			sigprocmask(SIG_BLOCK, &s, NULL);
			install(SECCOMP_RET_TRAP, 0);
		} else if (!strcmp(name, "trap-ignored")) {
			signal(SIGSYS, SIG_IGN);
			install(SECCOMP_RET_TRAP, 0);
		}
		errno = 0;
		long r = syscall(__NR_kvmng_run, 0);
		if (handled)
			printf("%s: SIGSYS handled\n", name);
		else
			printf("%s: %s\n", name, r == -1 ? ename(errno) : "returned");
		fflush(stdout);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		printf("%s: killed by signal %d\n", name, WTERMSIG(status));
}

int main(void)
{
	run("notif-no-listener");
	run("trace-no-tracer");
	run("trap-beats-notif");
	run("trap-no-handler");
	run("trap-blocked");
	run("trap-ignored");
	return 0;
}
