// SPDX-License-Identifier: GPL-2.0
/*
 * A program with SIGSYS handlers of its own, run with libkvmshim.so
 * preloaded on a stock kernel: its own SIGSYS (raise, and a seccomp trap
 * of its own filter) reaches its handler, kvmng syscalls are still
 * emulated, sigaction/signal report its handlers, blocking SIGSYS and
 * handlers with full masks do not make the trap fatal.
 *   own_sigsys            the checks; exit 0 when all pass
 *   own_sigsys resethand  SA_RESETHAND: the second raise kills (SIGSYS)
 *   own_sigsys default    a trap of its own filter with SIG_DFL kills
 */
#include "common.h"
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <ucontext.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#ifndef SYS_SECCOMP
#define SYS_SECCOMP 1
#endif

static volatile int hits, last_code, last_nr, hits2, usr1_ok;

static void on_sys(int sig, siginfo_t *si, void *ctx)
{
	ucontext_t *uc = ctx;
	(void)sig;
	hits++;
	last_code = si->si_code;
	last_nr = si->si_syscall;
	if (si->si_code == SYS_SECCOMP)
		uc->uc_mcontext.gregs[REG_RAX] = 4242;	/* the trapped call's answer */
}

static void on_sys2(int sig)
{
	(void)sig;
	hits2++;
}

static void on_usr1(int sig)
{
	(void)sig;
	/* A kvmng syscall inside a handler whose mask blocks everything. */
	usr1_ok = !strcmp(probe(), "EINVAL") && get_regs_ok();
}

/* Our own filter: TRAP getppid (data 7), allow everything else. */
static void own_filter(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP | 7),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
		printf("FAIL: cannot install our own filter: %s\n", strerror(errno));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	struct sigaction sa, old;
	const char *mode = argc > 1 ? argv[1] : "";

	EXPECT(!strcmp(probe(), "EINVAL"), "kvmng syscalls answer before any handler of ours (%s)",
	       probe());

	if (!strcmp(mode, "default")) {
		own_filter();
		syscall(SYS_getppid);	/* SIG_DFL: dies of SIGSYS */
		printf("FAIL: survived a trap of our own filter with SIG_DFL\n");
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sys;
	sa.sa_flags = SA_SIGINFO | (strcmp(mode, "resethand") ? 0 : SA_RESETHAND);
	sigemptyset(&sa.sa_mask);
	EXPECT(sigaction(SIGSYS, &sa, &old) == 0, "sigaction(SIGSYS) installs our handler");
	EXPECT(old.sa_handler == SIG_DFL, "the previous SIGSYS action reported is SIG_DFL");

	raise(SIGSYS);
	EXPECT(hits == 1 && last_code == SI_TKILL, "raise(SIGSYS) reaches our handler (hits %d code %d)",
	       hits, last_code);
	if (!strcmp(mode, "resethand")) {
		raise(SIGSYS);	/* reset to SIG_DFL by the first delivery: dies */
		printf("FAIL: survived the second raise with SA_RESETHAND\n");
		return 1;
	}

	EXPECT(!strcmp(probe(), "EINVAL"), "kvmng syscalls still emulated after sigaction(SIGSYS)");
	EXPECT(make_vm_and_vcpu() == 0 && get_regs_ok(), "a VM and vCPU through the syscalls (%s)",
	       ename(errno));
	EXPECT(hits == 1, "our handler saw none of the emulated calls (hits %d)", hits);

	struct sigaction now;
	EXPECT(sigaction(SIGSYS, NULL, &now) == 0 && now.sa_sigaction == on_sys &&
	       (now.sa_flags & SA_SIGINFO), "sigaction(SIGSYS, NULL, &old) reports our handler");

	/* A seccomp trap of our own filter reaches our handler. */
	own_filter();
	long r = syscall(SYS_getppid);
	EXPECT(hits == 2 && last_code == SYS_SECCOMP && last_nr == SYS_getppid && r == 4242,
	       "our own filter's trap reaches our handler (hits %d code %d nr %d ret %ld)",
	       hits, last_code, last_nr, r);
	EXPECT(!strcmp(probe(), "EINVAL") && get_regs_ok(),
	       "kvmng syscalls still emulated under our own filter too");
	EXPECT(status_field("/proc/self/status", "Seccomp_filters") == 2,
	       "two filters: the shim's and ours (%ld)",
	       status_field("/proc/self/status", "Seccomp_filters"));

	/* signal() replaces it and returns the old one. */
	void (*prev)(int) = signal(SIGSYS, on_sys2);
	EXPECT((void *)prev == (void *)on_sys, "signal(SIGSYS) returns the previous handler");
	raise(SIGSYS);
	EXPECT(hits2 == 1 && hits == 2, "raise reaches the handler set with signal()");
	EXPECT(!strcmp(probe(), "EINVAL"), "kvmng syscalls still emulated after signal(SIGSYS)");

	/* Blocking SIGSYS does not make the trap fatal. */
	sigset_t block, was;
	sigemptyset(&block);
	sigaddset(&block, SIGSYS);
	sigprocmask(SIG_BLOCK, &block, &was);
	EXPECT(!strcmp(probe(), "EINVAL") && get_regs_ok(),
	       "kvmng syscalls work with SIGSYS 'blocked' by sigprocmask");
	sigfillset(&block);
	pthread_sigmask(SIG_SETMASK, &block, NULL);
	EXPECT(get_regs_ok(), "kvmng syscalls work with every signal blocked by pthread_sigmask");
	sigprocmask(SIG_SETMASK, &was, NULL);

	/* A handler whose mask is full makes a kvmng syscall. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigfillset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	raise(SIGUSR1);
	EXPECT(usr1_ok, "a kvmng syscall inside a handler with a full sa_mask");

	/* SIG_IGN: a raised SIGSYS is ignored. */
	signal(SIGSYS, SIG_IGN);
	raise(SIGSYS);
	EXPECT(hits2 == 1, "SIG_IGN: raise(SIGSYS) is ignored");
	EXPECT(!strcmp(probe(), "EINVAL"), "kvmng syscalls still emulated with SIGSYS ignored");

	printf("%s\n", failures ? "SOME CHECKS FAILED" : "all checks passed");
	return failures ? 1 : 0;
}
