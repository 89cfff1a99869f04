// SPDX-License-Identifier: GPL-2.0
/*
 * What a new program image sees of the kvmng syscalls: prints one line
 *   probe=<EINVAL|ENOSYS> filters=<Seccomp_filters> nnp=<NoNewPrivs> vm=<ok|errno>
 * and, with an argument N > 0, execs itself with N - 1 first (through
 * libc's execv, environment inherited). Built dynamic and, when the
 * machine has libc.a, static.
 */
#include "common.h"

int main(int argc, char **argv)
{
	int depth = argc > 1 ? atoi(argv[1]) : 0;
	if (depth > 0) {
		char next[16];
		snprintf(next, sizeof(next), "%d", depth - 1);
		char *args[] = { argv[0], next, NULL };
		execv("/proc/self/exe", args);
		perror("execv");
		return 2;
	}
	const char *p = probe();
	int vm = make_vm_and_vcpu();
	printf("probe=%s filters=%ld nnp=%ld vm=%s\n", p,
	       status_field("/proc/self/status", "Seccomp_filters"),
	       status_field("/proc/self/status", "NoNewPrivs"),
	       vm == 0 ? "ok" : ename(errno));
	return 0;
}
