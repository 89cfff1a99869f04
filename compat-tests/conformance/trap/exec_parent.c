// SPDX-License-Identifier: GPL-2.0
/*
 * Runs with libkvmshim.so preloaded: forks, and in the child execs
 * `child` in one of these ways, then prints how the child ended:
 *   libc         execve() through libc, environment inherited
 *   raw-noshim   a raw execve syscall with LD_PRELOAD removed from the
 *                environment (what the interposer cannot see)
 *   off          execve() with KVMNG_SHIM=off added
 *   passthrough  execve() with KVMNG_MODE=passthrough added
 * Output: "<way>: exited N" or "<way>: killed by signal N", after the
 * child's own output.
 *   exec_parent WAY CHILD [ARGS...]
 */
#include "common.h"
#include <signal.h>
#include <sys/wait.h>

extern char **environ;

static char **env_with(const char *add, int drop_preload)
{
	int n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof(*env));
	int k = 0;
	for (int i = 0; i < n; i++)
		if (!(drop_preload && !strncmp(environ[i], "LD_PRELOAD=", 11)))
			env[k++] = environ[i];
	if (add)
		env[k++] = (char *)add;
	env[k] = NULL;
	return env;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: %s WAY CHILD [ARGS...]\n", argv[0]);
		return 2;
	}
	const char *way = argv[1];
	char **child_argv = argv + 2;
	EXPECT(!strcmp(probe(), "EINVAL"), "the parent's kvmng syscalls are emulated");
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		if (!strcmp(way, "libc"))
			execve(child_argv[0], child_argv, environ);
		else if (!strcmp(way, "raw-noshim"))
			syscall(SYS_execve, child_argv[0], child_argv, env_with(NULL, 1));
		else if (!strcmp(way, "off"))
			execve(child_argv[0], child_argv, env_with("KVMNG_SHIM=off", 0));
		else if (!strcmp(way, "passthrough"))
			execve(child_argv[0], child_argv, env_with("KVMNG_MODE=passthrough", 0));
		perror("exec");
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	if (WIFSIGNALED(status))
		printf("%s: killed by signal %d (%s)%s\n", way, WTERMSIG(status),
		       sigabbrev_np(WTERMSIG(status)), WCOREDUMP(status) ? " (core dumped)" : "");
	else
		printf("%s: exited %d\n", way, WEXITSTATUS(status));
	return 0;
}
