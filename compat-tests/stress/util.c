// SPDX-License-Identifier: GPL-2.0
/* kvmng-stress: helpers shared by the scenarios. */
#include "common.h"

#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

atomic_long failures;
int verbose;

double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

uint64_t rnd(void)
{
	static __thread uint64_t s;

	if (!s)
		s = (uint64_t)now() * 1000003 ^ (uint64_t)gettid() * 0x9e3779b97f4a7c15ull ^ 1;
	s ^= s << 13;
	s ^= s >> 7;
	s ^= s << 17;
	return s;
}

uint8_t *guest_memory(void)
{
	static const uint8_t io_loop[] = { 0xe6, 0x10, 0xeb, 0xfc };
	static const uint8_t spin[] = { 0xeb, 0xfe };
	uint8_t *m = mmap(NULL, GUEST_MEM, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (m == MAP_FAILED)
		return NULL;
	memset(m, 0xf4, GUEST_MEM);
	memcpy(m + CODE_IO_LOOP, io_loop, sizeof(io_loop));
	memcpy(m + CODE_SPIN, spin, sizeof(spin));
	return m;
}

int vcpu_real_mode(int fd, uint64_t rip, int via_ioctl)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	long r;

	r = via_ioctl ? ioctl(fd, KVM_GET_SREGS, &sregs) : kioctl(fd, KVM_GET_SREGS, &sregs);
	if (r)
		return -1;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	r = via_ioctl ? ioctl(fd, KVM_SET_SREGS, &sregs) : kioctl(fd, KVM_SET_SREGS, &sregs);
	if (r)
		return -1;
	memset(&regs, 0, sizeof(regs));
	regs.rip = rip;
	regs.rflags = 2;
	r = via_ioctl ? ioctl(fd, KVM_SET_REGS, &regs) : kioctl(fd, KVM_SET_REGS, &regs);
	return r ? -1 : 0;
}

size_t run_size(int kvm)
{
	static size_t size;

	if (!size) {
		long r = kioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
		size = r > 0 ? (size_t)r : 4096 * 3;
	}
	return size;
}

int shim_loaded(void)
{
	char line[512];
	int found = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "libkvmshim"))
			found = 1;
	fclose(f);
	return found;
}

int fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own fd */
}

long rss_kib(void)
{
	char line[256];
	long kib = -1;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

void fd_dump(const char *why)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	char path[300], link[256];

	if (!d)
		return;
	fprintf(stderr, "kvmng-stress: open fds (%s):", why);
	while ((e = readdir(d))) {
		ssize_t n;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		n = readlink(path, link, sizeof(link) - 1);
		link[n < 0 ? 0 : n] = 0;
		fprintf(stderr, " %s=%s", e->d_name, link);
	}
	fputc('\n', stderr);
	closedir(d);
}
