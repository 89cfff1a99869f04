/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * kvmng: KVM driven by system calls.
 *
 * The syscalls find their VM through the calling process's mm and their
 * vCPU through the calling thread, so the hot paths need no file
 * descriptor lookup.  Every object created here also has the file
 * descriptor the ioctl API would give it, so mmap() and every legacy
 * ioctl keep working on it.  Documentation/virt/kvm/kvmng.rst is the
 * specification.
 */
#ifndef _UAPI_LINUX_KVMNG_H
#define _UAPI_LINUX_KVMNG_H

#include <linux/types.h>

/*
 * Syscall numbers: one contiguous block, well above any number a released
 * kernel uses, so that a kernel without kvmng answers ENOSYS.  Moving the
 * block means changing KVMNG_SYSCALL_BASE (and the syscall table).
 *
 * On a kvmng kernel <asm/unistd.h>, generated from the syscall table and
 * included here through <linux/unistd.h>, has the same __NR_kvmng_* names
 * as plain numbers; its definitions win, so the two headers can be
 * included in any order.  On other kernels the definitions below provide
 * them.
 */
#include <linux/unistd.h>

#define KVMNG_SYSCALL_BASE		1000
#ifndef __NR_kvmng_create_vm
#define __NR_kvmng_create_vm	(KVMNG_SYSCALL_BASE + 0)
#endif
#ifndef __NR_kvmng_bind_vm
#define __NR_kvmng_bind_vm	(KVMNG_SYSCALL_BASE + 1)
#endif
#ifndef __NR_kvmng_create_vcpu
#define __NR_kvmng_create_vcpu	(KVMNG_SYSCALL_BASE + 2)
#endif
#ifndef __NR_kvmng_bind_vcpu
#define __NR_kvmng_bind_vcpu	(KVMNG_SYSCALL_BASE + 3)
#endif
#ifndef __NR_kvmng_run
#define __NR_kvmng_run		(KVMNG_SYSCALL_BASE + 4)
#endif
#ifndef __NR_kvmng_vcpu_state
#define __NR_kvmng_vcpu_state	(KVMNG_SYSCALL_BASE + 5)
#endif
#ifndef __NR_kvmng_irq
#define __NR_kvmng_irq		(KVMNG_SYSCALL_BASE + 6)
#endif
#ifndef __NR_kvmng_memory_map
#define __NR_kvmng_memory_map	(KVMNG_SYSCALL_BASE + 7)
#endif
#ifndef __NR_kvmng_control
#define __NR_kvmng_control	(KVMNG_SYSCALL_BASE + 8)
#endif
#ifndef __NR_kvmng_ioregion
#define __NR_kvmng_ioregion	(KVMNG_SYSCALL_BASE + 9)
#endif
#define KVMNG_SYSCALL_COUNT		10

/*
 * KVM_CHECK_EXTENSION(KVM_CAP_KVMNG) returns the set of kvmng syscalls the
 * kernel implements, bit n standing for KVMNG_SYSCALL_BASE + n; 0 (as on a
 * kernel without kvmng) means none.
 */
#define KVM_CAP_KVMNG			1000
#define KVMNG_SYSCALLS_ALL		((1U << KVMNG_SYSCALL_COUNT) - 1)

/* Binding an fd of -1 removes the binding. */
#define KVMNG_UNBIND			(-1)

/* kvmng_create_vcpu() flags */
#define KVMNG_CREATE_VCPU_BIND		(1U << 0)	/* bind the caller to it */
#define KVMNG_CREATE_VCPU_FLAGS		KVMNG_CREATE_VCPU_BIND

/* kvmng_vcpu_state(): one entry of the batch */
struct kvmng_state_entry {
	__u32 kind;	/* KVMNG_STATE_* */
	__u32 op;	/* KVMNG_STATE_GET or KVMNG_STATE_SET */
	__u64 addr;	/* user buffer holding the legacy ioctl's struct */
	__u32 size;	/* bytes at addr */
	__s32 result;	/* out: the legacy ioctl's return value, or -errno */
};

#define KVMNG_STATE_GET			1
#define KVMNG_STATE_SET			2

/* Entry kinds; each names the legacy struct found at addr. */
#define KVMNG_STATE_REGS		1	/* struct kvm_regs */
#define KVMNG_STATE_SREGS		2	/* struct kvm_sregs */
#define KVMNG_STATE_SREGS2		3	/* struct kvm_sregs2 */
#define KVMNG_STATE_FPU			4	/* struct kvm_fpu */
#define KVMNG_STATE_XSAVE		5	/* struct kvm_xsave (4096 bytes) */
#define KVMNG_STATE_XSAVE2		6	/* struct kvm_xsave, KVM_CAP_XSAVE2 bytes */
#define KVMNG_STATE_XCRS		7	/* struct kvm_xcrs */
#define KVMNG_STATE_MSRS		8	/* struct kvm_msrs + entries */
#define KVMNG_STATE_LAPIC		9	/* struct kvm_lapic_state */
#define KVMNG_STATE_EVENTS		10	/* struct kvm_vcpu_events */
#define KVMNG_STATE_MP_STATE		11	/* struct kvm_mp_state */
#define KVMNG_STATE_DEBUGREGS		12	/* struct kvm_debugregs */
#define KVMNG_STATE_CPUID		13	/* struct kvm_cpuid2 + entries */
#define KVMNG_STATE_ONE_REG		14	/* struct kvm_one_reg */
#define KVMNG_STATE_KIND_MAX		KVMNG_STATE_ONE_REG

/* The most entries one kvmng_vcpu_state() call takes. */
#define KVMNG_STATE_MAX_ENTRIES		64
/* result of an entry that was not attempted because an earlier one failed */
#define KVMNG_STATE_NOT_DONE		(-125)	/* -ECANCELED */

/* kvmng_irq() kinds */
#define KVMNG_IRQ_LINE			1	/* VM: set GSI nr to level */
#define KVMNG_IRQ_INTERRUPT		2	/* vCPU: queue vector nr */
#define KVMNG_IRQ_NMI			3	/* vCPU: queue an NMI */
#define KVMNG_IRQ_SMI			4	/* vCPU: queue an SMI */

/* The most regions one kvmng_memory_map() call takes. */
#define KVMNG_MEMORY_MAP_MAX		256

/* kvmng_control() scopes */
#define KVMNG_SCOPE_SYSTEM		0	/* a /dev/kvm ioctl */
#define KVMNG_SCOPE_VM			1	/* an ioctl on the bound VM */
#define KVMNG_SCOPE_VCPU		2	/* an ioctl on the bound vCPU */

/*
 * kvmng_ioregion(): guest MMIO or port I/O accesses to a registered range
 * are sent, one message per access, to a device over an AF_UNIX
 * SOCK_SEQPACKET socket, and the vCPU continues without an exit to the
 * caller of kvmng_run().  All fields are in host byte order.
 */
struct kvmng_ioregion {
	__u64 addr;		/* guest-physical address, or first port */
	__u64 size;		/* bytes (ports), > 0 */
	__s32 fd;		/* connected AF_UNIX SOCK_SEQPACKET socket (ADD) */
	__u32 flags;		/* KVMNG_IOREGION_PIO, KVMNG_IOREGION_POSTED */
	__u64 user_data;	/* copied into every request */
	__u64 reserved[4];	/* must be 0 */
};

/* kvmng_ioregion() ops */
#define KVMNG_IOREGION_ADD		1
#define KVMNG_IOREGION_DEL		2

/* struct kvmng_ioregion flags */
#define KVMNG_IOREGION_PIO		(1U << 0)	/* port I/O, not MMIO */
#define KVMNG_IOREGION_POSTED		(1U << 1)	/* writes get no reply */
#define KVMNG_IOREGION_FLAGS		(KVMNG_IOREGION_PIO | KVMNG_IOREGION_POSTED)

/* The most regions a VM has (MMIO and PIO together). */
#define KVMNG_IOREGION_MAX		256
/* The largest region, in bytes. */
#define KVMNG_IOREGION_MAX_SIZE		(1ULL << 30)
/* Port I/O regions end at or below this port. */
#define KVMNG_IOREGION_PIO_END		0x10000

/* Wire protocol: one request per guest access, kernel to device. */
struct kvmng_ioregion_request {
	__u64 id;		/* never 0, never reused, increasing per vCPU */
	__u64 offset;		/* from the region's addr */
	__u64 data;		/* write: the bytes written (low len bytes); read: 0 */
	__u64 user_data;	/* the region's user_data */
	__u32 vcpu_id;		/* the accessing vCPU */
	__u8 len;		/* 1 to 8 bytes */
	__u8 dir;		/* KVMNG_IOREGION_READ or KVMNG_IOREGION_WRITE */
	__u8 flags;		/* KVMNG_IOREGION_REQ_* */
	__u8 pad;		/* 0 */
};

/* Device to kernel: the answer to a read or to a write that is not posted. */
struct kvmng_ioregion_reply {
	__u64 id;		/* the request's id */
	__u64 data;		/* read: the value (low len bytes); write: 0 */
};

#define KVMNG_IOREGION_READ		0
#define KVMNG_IOREGION_WRITE		1
#define KVMNG_IOREGION_REQ_POSTED	(1U << 0)	/* send no reply */
#define KVMNG_IOREGION_REQ_PIO		(1U << 1)	/* a port access */

#endif /* _UAPI_LINUX_KVMNG_H */
