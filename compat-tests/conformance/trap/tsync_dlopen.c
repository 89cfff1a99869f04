// SPDX-License-Identifier: GPL-2.0
/*
 * Threads that exist before the shim loads are covered (TSYNC): a thread
 * is started, then libkvmshim.so is dlopen()ed (its constructor installs
 * the filter), then that older thread makes kvmng syscalls.
 *   tsync_dlopen /path/to/libkvmshim.so
 */
#include "common.h"
#include <dlfcn.h>
#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int go, before_ok, after_ok, regs_ok, thread_seccomp;
static pid_t tid;

static void *older(void *p)
{
	char path[64];
	(void)p;
	tid = gettid();
	before_ok = !strcmp(probe(), "ENOSYS");
	pthread_mutex_lock(&lock);
	while (!go)
		pthread_cond_wait(&cond, &lock);
	pthread_mutex_unlock(&lock);
	after_ok = !strcmp(probe(), "EINVAL");
	regs_ok = make_vm_and_vcpu() == 0 && get_regs_ok();
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	thread_seccomp = status_field(path, "Seccomp");
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	if (argc < 2) {
		fprintf(stderr, "usage: %s libkvmshim.so\n", argv[0]);
		return 2;
	}
	EXPECT(!strcmp(probe(), "ENOSYS"), "before the shim: ENOSYS (%s)", probe());
	pthread_create(&t, NULL, older, NULL);
	usleep(50000);
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_GLOBAL);
	EXPECT(h != NULL, "dlopen(%s): %s", argv[1], h ? "ok" : dlerror());
	pthread_mutex_lock(&lock);
	go = 1;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(t, NULL);
	EXPECT(before_ok, "the older thread saw ENOSYS before the shim loaded");
	EXPECT(thread_seccomp == 2, "the older thread has the filter (Seccomp: %d)", thread_seccomp);
	EXPECT(after_ok, "the older thread's kvmng syscalls are emulated after the dlopen");
	EXPECT(regs_ok, "the older thread creates, binds and uses a vCPU");
	return failures ? 1 : 0;
}
