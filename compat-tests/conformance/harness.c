// SPDX-License-Identifier: GPL-2.0
/*
 * The conformance suite's runner: see harness.h.
 *
 *   conformance [--list] [NAME...]
 *
 * With names, only the cases whose names contain one of them run.
 * Exit status: 0 when nothing failed, 1 otherwise.
 */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern const struct test_case __start_kvmng_tests[], __stop_kvmng_tests[];


struct counters {
	int passed, failed, skipped, points;
};

static struct counters *counts;	/* shared with the forked cases */
static const char *current;

const char *case_name(void)
{
	return current;
}

const char *errname(int e)
{
	const char *name = e ? strerrorname_np(e) : "0";
	return name ? name : "E?";
}

static void emit(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void emit(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	/* One write per line: lines of concurrent threads do not mix. */
	if (write(STDOUT_FILENO, line, n) < 0)
		return;
}

void check_point(int ok, const char *file, int line, const char *what,
		 const char *fmt, ...)
{
	int n = __atomic_add_fetch(&counts->points, 1, __ATOMIC_SEQ_CST);
	const char *base = strrchr(file, '/');

	if (ok) {
		__atomic_add_fetch(&counts->passed, 1, __ATOMIC_SEQ_CST);
		emit("ok %d - %s: %s\n", n, current, what);
		return;
	}
	__atomic_add_fetch(&counts->failed, 1, __ATOMIC_SEQ_CST);
	char why[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	emit("not ok %d - %s: %s\n#   at %s:%d: %s\n", n, current, what,
	     base ? base + 1 : file, line, why);
}

void case_abort(void)
{
	_exit(3);
}

void case_skip(const char *why)
{
	int n = __atomic_add_fetch(&counts->points, 1, __ATOMIC_SEQ_CST);
	__atomic_add_fetch(&counts->skipped, 1, __ATOMIC_SEQ_CST);
	emit("ok %d - %s # SKIP %s\n", n, current, why);
	_exit(0);
}

static int kvm_usable(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return 0;
	close(fd);
	return 1;
}

static int selected(const char *name, int argc, char **argv)
{
	int any = 0;
	for (int i = 1; i < argc; i++) {
		if (argv[i][0] == '-')
			continue;
		any = 1;
		if (strstr(name, argv[i]))
			return 1;
	}
	return !any;
}

/* Runs one case in a child; a crash or timeout is one failure. */
static void run_case(const struct test_case *t)
{
	pid_t pid;
	int status;

	current = t->name;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		check_point(0, __FILE__, __LINE__, "fork", "fork: %s", strerror(errno));
		return;
	}
	if (pid == 0) {
		alarm(60);
		t->fn();
		_exit(0);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status))
		check_point(0, __FILE__, __LINE__, "the case runs to its end",
			    "killed by signal %d (%s)%s", WTERMSIG(status),
			    strsignal(WTERMSIG(status)),
			    WTERMSIG(status) == SIGALRM ? ": timed out after 60 s" : "");
	else if (WEXITSTATUS(status) != 0 && WEXITSTATUS(status) != 3)
		check_point(0, __FILE__, __LINE__, "the case runs to its end",
			    "exited with status %d", WEXITSTATUS(status));
}

int main(int argc, char **argv)
{
	const struct test_case *t;
	int have_kvm, present, list = 0;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--list"))
			list = 1;
	}
	if (list) {
		for (t = __start_kvmng_tests; t < __stop_kvmng_tests; t++)
			printf("%s%s\n", t->name, t->needs_kvm ? "" : " (no /dev/kvm needed)");
		return 0;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	counts = mmap(NULL, sizeof(*counts), PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (counts == MAP_FAILED) {
		perror("mmap");
		return 1;
	}

	have_kvm = kvm_usable();
	present = kvmng_present();
	printf("# kvmng conformance suite (docs/api.md)\n");
	printf("# kvmng syscalls: %s\n", present ?
	       "present (native, or emulated by a preloaded libkvmshim.so)" :
	       "ABSENT: they answer ENOSYS");
	if (!present)
		printf("!!! The kvmng syscalls answer ENOSYS: boot a kernel with the kvmng patches,\n"
		       "!!! or run this suite with LD_PRELOAD=libkvmshim.so (make conformance-test).\n"
		       "!!! Every case that needs them fails.\n");
	if (!have_kvm)
		printf("!!! /dev/kvm is missing or cannot be opened read-write: SKIPPING every\n"
		       "!!! case that needs it (they are counted as skipped, not passed).\n");

	for (t = __start_kvmng_tests; t < __stop_kvmng_tests; t++) {
		if (!selected(t->name, argc, argv))
			continue;
		current = t->name;
		if (t->needs_kvm && !have_kvm) {
			int n = ++counts->points;
			counts->skipped++;
			printf("ok %d - %s # SKIP /dev/kvm not usable\n", n, t->name);
			continue;
		}
		if (!present) {
			check_point(0, __FILE__, __LINE__, "kvmng syscalls present",
				    "kvmng_run(~0) answered ENOSYS");
			continue;
		}
		run_case(t);
	}
	printf("1..%d\n", counts->points);
	printf("conformance: %d passed, %d failed, %d skipped\n",
	       counts->passed, counts->failed, counts->skipped);
	return counts->failed ? 1 : 0;
}
