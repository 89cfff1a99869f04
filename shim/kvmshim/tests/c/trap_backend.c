/*
 * trap_backend: a legacy KVM program (glibc ioctl()) run with the shim
 * preloaded on a kernel without kvmng, so that the trap half's seccomp
 * filter is installed in the process. It counts, with the shim's
 * kvmshim_trapped_calls(), how many kvmng syscalls the SIGSYS handler
 * answered while it issues KVM ioctls (the interposition half must carry
 * them out through the legacy backend directly, not through the trap:
 * expected 0), then makes one kvmng syscall itself (expected 1).
 *
 *   trap_backend            prints one "what = value" line per step
 *
 * Compiled by the test with -DKVMNG_NR_RUN=<kvmng_run's number>.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef KVMNG_NR_RUN
#error "compile with -DKVMNG_NR_RUN=<number of kvmng_run>"
#endif

static const char *ename(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "E?";
}

static long show(const char *what, long r)
{
	if (r == -1)
		printf("%s = -1 %s\n", what, ename(errno));
	else
		printf("%s = %ld\n", what, r);
	fflush(stdout);
	return r;
}

static long status_field(const char *field)
{
	char line[256];
	long value = -1;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			value = strtol(line + n + 1, NULL, 10);
	fclose(f);
	return value;
}

int main(void)
{
	uint64_t (*trapped)(void) = (uint64_t (*)(void))dlsym(RTLD_DEFAULT, "kvmshim_trapped_calls");
	if (!trapped) {
		printf("kvmshim_trapped_calls not found: is the shim preloaded?\n");
		return 1;
	}
	printf("seccomp filters = %ld\n", status_field("Seccomp_filters"));
	uint64_t before = trapped();

	int kvm = show("open /dev/kvm", open("/dev/kvm", O_RDWR | O_CLOEXEC));
	int vm = show("KVM_CREATE_VM", ioctl(kvm, KVM_CREATE_VM, 0));
	if (kvm < 0 || vm < 0)
		return 1;
	show("KVM_CHECK_EXTENSION(KVM_CAP_USER_MEMORY) on the VM",
	     ioctl(vm, KVM_CHECK_EXTENSION, KVM_CAP_USER_MEMORY) > 0);
	size_t mem_size = 0x10000;
	uint8_t *mem = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mem[0x1000] = 0xf4; /* hlt */
	struct kvm_userspace_memory_region region = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = mem_size,
		.userspace_addr = (uintptr_t)mem,
	};
	show("KVM_SET_USER_MEMORY_REGION", ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region));
	int vcpu = show("KVM_CREATE_VCPU", ioctl(vm, KVM_CREATE_VCPU, 0));
	if (vcpu < 0)
		return 1;
	long mmap_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	show("KVM_GET_VCPU_MMAP_SIZE > 0", mmap_size > 0);
	struct kvm_run *run = mmap(NULL, mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		return 1;
	struct kvm_sregs sregs;
	show("KVM_GET_SREGS", ioctl(vcpu, KVM_GET_SREGS, &sregs));
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	show("KVM_SET_SREGS", ioctl(vcpu, KVM_SET_SREGS, &sregs));
	struct kvm_regs regs;
	show("KVM_GET_REGS", ioctl(vcpu, KVM_GET_REGS, &regs));
	memset(&regs, 0, sizeof(regs));
	regs.rip = 0x1000;
	regs.rflags = 2;
	show("KVM_SET_REGS", ioctl(vcpu, KVM_SET_REGS, &regs));
	show("KVM_RUN", ioctl(vcpu, KVM_RUN, 0));
	printf("exit reason hlt = %d\n", run->exit_reason == KVM_EXIT_HLT);
	struct kvm_mp_state mp;
	show("KVM_GET_MP_STATE", ioctl(vcpu, KVM_GET_MP_STATE, &mp));
	show("KVM_GET_REGS after the run", ioctl(vcpu, KVM_GET_REGS, &regs));
	printf("rip after hlt = %#llx\n", (unsigned long long)regs.rip);

	uint64_t after = trapped();
	printf("trapped during the ioctls = %llu\n", (unsigned long long)(after - before));
	errno = 0;
	show("kvmng_run(~0) made by the program", syscall(KVMNG_NR_RUN, ~0U));
	printf("trapped by that kvmng syscall = %llu\n", (unsigned long long)(trapped() - after));
	return 0;
}
