// SPDX-License-Identifier: GPL-2.0
/* Helpers shared by the cases: a bound VM with memory and a bound vCPU,
 * real-mode guest loading, all through the kvmng syscalls. */
#include "harness.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

int open_kvm(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	REQUIRE(fd >= 0, "open /dev/kvm: %s", strerror(errno));
	return fd;
}

struct kvmng_state_entry entry(uint32_t kind, uint32_t op, void *buf, uint32_t size)
{
	struct kvmng_state_entry e = {
		.kind = kind, .op = op, .addr = (uintptr_t)buf, .size = size,
		.result = 0x5eed,
	};
	return e;
}

int kvmng_emulated(void)
{
	uint64_t (*trapped)(void) =
		(uint64_t (*)(void))dlsym(RTLD_DEFAULT, "kvmshim_trapped_calls");

	if (!trapped)
		return 0;
	uint64_t before = trapped();
	syscall(__NR_kvmng_run, ~0u);	/* the probe: no side effect */
	return trapped() != before;
}

int shim_translates_ioctls(void)
{
	const char *mode = getenv("KVMNG_MODE");

	if (!dlsym(RTLD_DEFAULT, "kvmshim_trapped_calls"))
		return 0;
	return !mode || strcmp(mode, "passthrough") != 0;
}

int closed_fd(void)
{
	/* High enough to stay free while the case opens fds of its own. */
	for (int fd = 400; fd < 500; fd++)
		if (fcntl(fd, F_GETFD) < 0 && errno == EBADF)
			return fd;
	REQUIRE(0, "no free fd number in 400..500");
	return -1;
}

int lowest_free_fd(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0, "open /dev/null: %s", strerror(errno));
	close(fd);
	return fd;
}

void *unmapped_page(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(p != MAP_FAILED, "mmap: %s", strerror(errno));
	munmap(p, 4096);
	return p;
}

void vm_setup(struct vm *v)
{
	memset(v, 0, sizeof(*v));
	v->kvm = open_kvm();
	v->vm = kvmng_create_vm(v->kvm, 0, 0);
	REQUIRE(v->vm >= 0, "kvmng_create_vm: %s", errname(errno));
	v->mem = mmap(NULL, GUEST_LOW_MEM, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(v->mem != MAP_FAILED, "mmap guest memory: %s", strerror(errno));
	struct kvm_userspace_memory_region2 slot0 = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = GUEST_LOW_MEM,
		.userspace_addr = (uintptr_t)v->mem,
	};
	int r = kvmng_memory_map(&slot0, 1, 0);
	REQUIRE(r == 1, "kvmng_memory_map(slot 0) = %d/%s", r, errname(errno));
	v->vcpu = kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND);
	REQUIRE(v->vcpu >= 0, "kvmng_create_vcpu: %s", errname(errno));
	long size = kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_VCPU_MMAP_SIZE, 0, 0);
	REQUIRE(size >= (long)sizeof(struct kvm_run),
		"kvmng_control(SYSTEM, KVM_GET_VCPU_MMAP_SIZE) = %ld/%s", size, errname(errno));
	v->run_size = size;
	v->run = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	REQUIRE(v->run != MAP_FAILED, "mmap kvm_run: %s", strerror(errno));
}

static void real_segment(struct kvm_segment *s, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->limit = 0xFFFF;
	s->type = type;
	s->present = 1;
	s->s = 1;
}

void vm_load_real(struct vm *v, const void *code, size_t len)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;

	REQUIRE(len <= 0x7000, "guest too large");
	memcpy(v->mem + GUEST_LOAD_ADDR, code, len);

	struct kvmng_state_entry get = entry(KVMNG_STATE_SREGS, KVMNG_STATE_GET,
					     &sregs, sizeof(sregs));
	int r = kvmng_vcpu_state(&get, 1, 0);
	REQUIRE(r == 1, "GET SREGS = %d/%s", r, errname(errno));
	real_segment(&sregs.cs, 0xB);
	real_segment(&sregs.ds, 0x3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.cr0 &= ~0x80000001ULL;	/* PG, PE */
	sregs.cr4 &= ~0x20ULL;		/* PAE */
	sregs.efer &= ~0x500ULL;	/* LME, LMA */
	sregs.idt.base = 0;
	sregs.idt.limit = 0x3FF;
	memset(&regs, 0, sizeof(regs));
	regs.rip = GUEST_LOAD_ADDR;
	regs.rsp = 0x1000;
	regs.rflags = 2;
	struct kvmng_state_entry set[2] = {
		entry(KVMNG_STATE_SREGS, KVMNG_STATE_SET, &sregs, sizeof(sregs)),
		entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs)),
	};
	r = kvmng_vcpu_state(set, 2, 0);
	REQUIRE(r == 2, "SET SREGS+REGS = %d/%s", r, errname(errno));
}

int run_once(struct vm *v)
{
	int r;
	do {
		r = kvmng_run(0);
	} while (r < 0 && errno == EINTR);
	REQUIRE(r >= 0, "kvmng_run: %s", errname(errno));
	return v->run->exit_reason;
}
