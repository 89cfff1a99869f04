/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvmng_syscalls.h: libc-style wrappers around syscall(2) for the kvmng
 * system calls of docs/api.md.  The ABI (numbers, structs, constants) is
 * <linux/kvmng.h>, the uapi header of the kernel patch; this file only adds
 * one static inline function per call.  Each returns what syscall(2)
 * returns: the result, or -1 with errno set.
 *
 * On a stock kernel the calls answer ENOSYS, unless libkvmshim.so is
 * preloaded: it traps them with seccomp and emulates them (docs/trap.md).
 */
#ifndef KVMNG_SYSCALLS_H
#define KVMNG_SYSCALLS_H

#include <errno.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <linux/kvm.h>
#include <linux/kvmng.h>

/*
 * kvmng_memory_map() takes struct kvm_userspace_memory_region2 (Linux 6.8).
 * Older <linux/kvm.h> (Debian 12 ships 6.1's) lacks it: define it as 6.8
 * does.
 */
#ifndef KVM_SET_USER_MEMORY_REGION2
struct kvm_userspace_memory_region2 {
	__u32 slot;
	__u32 flags;
	__u64 guest_phys_addr;
	__u64 memory_size;
	__u64 userspace_addr;
	__u64 guest_memfd_offset;
	__u32 guest_memfd;
	__u32 pad1;
	__u64 pad2[14];
};
#define KVM_SET_USER_MEMORY_REGION2 _IOW(KVMIO, 0x49, struct kvm_userspace_memory_region2)
#endif

static inline int kvmng_create_vm(int kvm_fd, unsigned long type, unsigned int flags)
{
	return (int)syscall(__NR_kvmng_create_vm, kvm_fd, type, flags);
}

static inline int kvmng_bind_vm(int vm_fd, unsigned int flags)
{
	return (int)syscall(__NR_kvmng_bind_vm, vm_fd, flags);
}

static inline int kvmng_create_vcpu(unsigned long id, unsigned int flags)
{
	return (int)syscall(__NR_kvmng_create_vcpu, id, flags);
}

static inline int kvmng_bind_vcpu(int vcpu_fd, unsigned int flags)
{
	return (int)syscall(__NR_kvmng_bind_vcpu, vcpu_fd, flags);
}

static inline int kvmng_run(unsigned int flags)
{
	return (int)syscall(__NR_kvmng_run, flags);
}

static inline int kvmng_vcpu_state(struct kvmng_state_entry *entries,
				   unsigned int count, unsigned int flags)
{
	return (int)syscall(__NR_kvmng_vcpu_state, entries, count, flags);
}

static inline int kvmng_irq(unsigned int kind, unsigned int nr,
			    unsigned int level, unsigned int flags)
{
	return (int)syscall(__NR_kvmng_irq, kind, nr, level, flags);
}

static inline int kvmng_memory_map(const struct kvm_userspace_memory_region2 *regions,
				   unsigned int count, unsigned int flags)
{
	return (int)syscall(__NR_kvmng_memory_map, regions, count, flags);
}

static inline long kvmng_control(unsigned int scope, unsigned int cmd,
				 unsigned long arg, unsigned int flags)
{
	return syscall(__NR_kvmng_control, scope, cmd, arg, flags);
}

static inline int kvmng_ioregion(unsigned int op, const struct kvmng_ioregion *region,
				 unsigned int flags)
{
	return (int)syscall(__NR_kvmng_ioregion, op, region, flags);
}

/*
 * The probe of docs/api.md section 4: 1 when the kvmng syscalls answer
 * (natively or through the shim), 0 when they answer ENOSYS.
 */
static inline int kvmng_present(void)
{
	return syscall(__NR_kvmng_run, ~0U) == -1 && errno == EINVAL;
}

#endif /* KVMNG_SYSCALLS_H */
