// SPDX-License-Identifier: GPL-2.0
/* errno across emulated calls: a successful call leaves errno alone, a
 * failing one sets it (from the -errno the handler put in RAX, as libc
 * does with the kernel's), in the calling thread only. */
#include "common.h"
#include <pthread.h>

static void *other(void *p)
{
	(void)p;
	errno = 777;
	for (int i = 0; i < 2000; i++)
		(void)get_regs_ok();	/* ESRCH here: this thread has no vCPU */
	return NULL;
}

int main(void)
{
	pthread_t t;
	EXPECT(make_vm_and_vcpu() == 0, "VM and vCPU (%s)", ename(errno));
	errno = 1234;
	EXPECT(get_regs_ok(), "a successful emulated call");
	EXPECT(errno == 1234, "errno untouched by a successful call (%d)", errno);
	errno = 1234;
	long r = syscall(__NR_kvmng_run, 1);
	EXPECT(r == -1 && errno == EINVAL, "a failing call sets errno (%ld/%s)", r, ename(errno));
	pthread_create(&t, NULL, other, NULL);
	int bad = 0;
	for (int i = 0; i < 2000; i++) {
		errno = 4321;
		if (!get_regs_ok() || errno != 4321)
			bad++;
	}
	pthread_join(t, NULL);
	EXPECT(bad == 0, "errno per thread while another thread fails calls (%d bad)", bad);
	return failures ? 1 : 0;
}
