/*
 * exec_env: with the shim preloaded and its seccomp filter installed (a
 * kernel without kvmng), exec this program again with an environment
 * that lacks LD_PRELOAD, in one of several ways, and report how the new
 * image fared: the shim's exec hooks must put itself back in LD_PRELOAD,
 * so that the child's kvmng syscall is emulated rather than killed by the
 * inherited filter's SIGSYS.
 *
 *   exec_env WAY           parent: prints "parent: probe=..." and then
 *                          "WAY: exited N" or "WAY: killed by signal N"
 *                          after the child's own line
 *   exec_env child ARGS... child: "child: probe=<errno name> args=<ARGS
 *                          joined by ','> preload=<LD_PRELOAD or (none)>"
 *
 * WAY (the child's environment is the parent's less LD_PRELOAD unless
 * said otherwise):
 *   execve, execvpe, fexecve, execle   the call, with that environment
 *   vfork, vfork-execle    the same from a vfork() child; the parent then
 *                          also prints "WAY: heap in use grew by N bytes"
 *   execv, execl, execlp   LD_PRELOAD unset in the forked child, then the
 *                          call (which uses environ)
 *   many-args              execle with 12 arguments (some on the stack)
 *   off                    execve, KVMNG_SHIM=off added
 *   other-preload          execve, LD_PRELOAD=libm.so.6 instead
 *   huge                   execve, 3000 more variables (over the shim's
 *                          fixed buffer)
 *   inherit                execve(environ): LD_PRELOAD kept as it is
 *
 * Compiled by the test with -DKVMNG_NR_RUN=<kvmng_run's number>.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef KVMNG_NR_RUN
#error "compile with -DKVMNG_NR_RUN=<number of kvmng_run>"
#endif

extern char **environ;

static const char *probe(void)
{
	errno = 0;
	long r = syscall(KVMNG_NR_RUN, ~0U);
	if (r != -1)
		return "0";
	const char *n = strerrorname_np(errno);
	return n ? n : "E?";
}

/* The parent's environment less LD_PRELOAD, plus `extra` entries. */
static char **env_without_preload(char **extra, int n_extra)
{
	int n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + n_extra + 1, sizeof(*env));
	int k = 0;
	for (int i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11))
			env[k++] = environ[i];
	for (int i = 0; i < n_extra; i++)
		env[k++] = extra[i];
	env[k] = NULL;
	return env;
}

static int child(int argc, char **argv)
{
	const char *p = probe();
	printf("child: probe=%s args=", p);
	for (int i = 2; i < argc; i++)
		printf("%s%s", i > 2 ? "," : "", argv[i]);
	const char *preload = getenv("LD_PRELOAD");
	printf(" preload=%s\n", preload ? preload : "(none)");
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "child"))
		return child(argc, argv);
	if (argc != 2) {
		fprintf(stderr, "usage: %s WAY | child ARGS...\n", argv[0]);
		return 2;
	}
	const char *way = argv[1];
	char self[4096];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len < 0)
		return 2;
	self[len] = 0;
	struct rlimit no_core = { 0, 0 };
	setrlimit(RLIMIT_CORE, &no_core); /* the SIGSYS cases dump no core */
	printf("parent: probe=%s\n", probe());
	fflush(stdout);

	char *args[] = { self, "child", (char *)way, NULL };
	char **env = env_without_preload(NULL, 0);
	if (!strcmp(way, "off")) {
		char *extra[] = { "KVMNG_SHIM=off" };
		env = env_without_preload(extra, 1);
	} else if (!strcmp(way, "other-preload")) {
		char *extra[] = { "LD_PRELOAD=libm.so.6" };
		env = env_without_preload(extra, 1);
	} else if (!strcmp(way, "huge")) {
		int n = 3000;
		char **extra = calloc(n, sizeof(*extra));
		for (int i = 0; i < n; i++)
			if (asprintf(&extra[i], "FILLER_%d=%d", i, i) < 0)
				return 2;
		env = env_without_preload(extra, n);
	}

	pid_t pid;
	struct mallinfo2 heap_before = mallinfo2();
	if (!strncmp(way, "vfork", 5)) {
		pid = vfork();
		if (pid == 0) {
			if (!strcmp(way, "vfork-execle"))
				execle(self, self, "child", way, (char *)NULL, env);
			else
				execve(self, args, env);
			_exit(127);
		}
	} else {
		pid = fork();
		if (pid == 0) {
			if (!strcmp(way, "execle"))
				execle(self, self, "child", way, (char *)NULL, env);
			else if (!strcmp(way, "many-args"))
				execle(self, self, "child", "a1", "a2", "a3", "a4", "a5", "a6",
				       "a7", "a8", "a9", "a10", (char *)NULL, env);
			else if (!strcmp(way, "execvpe"))
				execvpe(self, args, env);
			else if (!strcmp(way, "fexecve")) {
				int fd = open(self, O_RDONLY | O_CLOEXEC);
				fexecve(fd, args, env);
			} else if (!strcmp(way, "execv")) {
				unsetenv("LD_PRELOAD");
				execv(self, args);
			} else if (!strcmp(way, "execl")) {
				unsetenv("LD_PRELOAD");
				execl(self, self, "child", way, (char *)NULL);
			} else if (!strcmp(way, "execlp")) {
				unsetenv("LD_PRELOAD");
				execlp(self, self, "child", way, (char *)NULL);
			} else if (!strcmp(way, "inherit"))
				execve(self, args, environ);
			else
				execve(self, args, env);
			perror("exec");
			_exit(127);
		}
	}
	if (pid < 0)
		return 2;
	int status;
	waitpid(pid, &status, 0);
	/* A vfork child runs in our memory: what it allocated and did not
	 * free before its exec would show here. */
	if (!strncmp(way, "vfork", 5))
		printf("%s: heap in use grew by %zu bytes\n", way,
		       mallinfo2().uordblks - heap_before.uordblks);
	if (WIFSIGNALED(status))
		printf("%s: killed by signal %d\n", way, WTERMSIG(status));
	else
		printf("%s: exited %d\n", way, WEXITSTATUS(status));
	return 0;
}
