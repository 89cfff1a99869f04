/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kvmng-smp: an SMP VMM in miniature, through plain ioctl() (so that
 * libkvmshim.so translates it). See smp.c for what it checks.
 */
#ifndef KVMNG_SMP_H
#define KVMNG_SMP_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

#include "layout.h"

#define MAX_VCPUS	8
/* QEMU's SIG_IPI. */
#define SIG_IPI		SIGUSR1
/* IOAPIC pins (GSIs above the PIC's 16, so the uninitialized 8259 never
 * sees them): KVM_IRQ_LINE drives GSI_LINE + i, irqfd i is GSI_IRQFD + i. */
#define GSI_LINE	16
#define GSI_IRQFD	20
/* MSI routes (KVM_SET_GSI_ROUTING), one irqfd each: GSI_MSI + i. */
#define GSI_MSI		24

/* A slot change taking STALL_S is a stall; a run allows STALLS_ALLOWED
 * of them (load), and no change may take STALL_HARD_S (vm.c). */
#define STALL_S		1.0
#define STALLS_ALLOWED	2
#define STALL_HARD_S	5.0

/* How the vCPU threads let SIG_IPI reach KVM_RUN. */
enum variant {
	/* QEMU with KVM_CAP_IMMEDIATE_EXIT: the thread's own mask (all
	 * blocked but SIG_IPI and SIGBUS); a kick sets immediate_exit. */
	V_SIGMASK,
	/* Older QEMU: the thread blocks SIG_IPI too, KVM_SET_SIGNAL_MASK
	 * lets it through inside KVM_RUN; a kick is the signal alone, and
	 * the thread eats pending ones after each KVM_RUN. */
	V_KVM_SIGMASK,
};

struct vcpu {
	struct vm *vm;
	int id;
	pthread_t thread;
	int fd;
	_Atomic(struct kvm_run *) run;	/* published by the vCPU thread */
	atomic_int up;			/* set up, about to run */
	unsigned parked_gen;		/* under vm->lock */
	/* Counted by the vCPU thread (read by main after the join). */
	long paused, resumed;
	long state_ok, state_bad;
	struct kvm_regs parked_regs;	/* read by the thread as it parks */
	long main_same;			/* main thread's read agreed (main) */
	long port_exits[24];		/* IRQ_PORT by the guest's index */
	long mmio_exits, eintr, eintr_unasked, eagain;
};

struct vm {
	int kvm, fd;
	enum variant variant;
	int nvcpus;
	size_t run_size;
	uint8_t *low;			/* slot 0, [0, LOW_MEM) */
	uint8_t *buf[2];		/* the data slot's two backings */
	int irqfd[MAX_VCPUS];
	int msi_irqfd[MAX_VCPUS];	/* on GSI_MSI + i, an MSI route */
	struct vcpu vcpu[MAX_VCPUS];
	uint64_t guest_size;
	struct kvm_cpuid2 *cpuid;	/* KVM_GET_SUPPORTED_CPUID, for every vCPU */
	/* QEMU's vm_start: the vCPU threads run once every vCPU exists. */
	int started;			/* under lock */
	/* Pause protocol: main raises pause_gen and kicks; each vCPU thread
	 * parks with parked_gen = pause_gen until resume_gen reaches it. */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	atomic_uint pause_gen;
	unsigned resume_gen;
	atomic_int stop;
	/* Data slot sequence. */
	int slot_ops;
	uint64_t gen;
	double slot_max_s, slot_sum_s;
	int stalls;			/* changes that took STALL_S or more */
	long irq_line_calls, irqfd_writes, msi_calls, msi_delivered;
	long routings;			/* KVM_SET_GSI_ROUTING calls */
};

extern atomic_long failures;
extern atomic_int aborted;

/* One line per failure on stderr (one write: threads do not interleave). */
#define FAIL(...) do {								\
	char fail_msg_[512];							\
	atomic_fetch_add(&failures, 1);						\
	snprintf(fail_msg_, sizeof(fail_msg_), __VA_ARGS__);			\
	fprintf(stderr, "kvmng-smp: FAIL %s:%d: %s\n", __FILE__, __LINE__,	\
		fail_msg_);							\
} while (0)

double now(void);

/* vm.c */
int vm_setup(struct vm *v);
void vm_teardown(struct vm *v);
/* The next operation on the data slot; *p and *q are what the guest must
 * then read at SLOT_P_GPA and SLOT_Q_GPA. 0 or -1. */
int slot_op(struct vm *v, uint64_t *p, uint64_t *q);
/* Points MSI route GSI_MSI + i (vector VEC_ROUTED + i) at vCPU
 * (i + shift) % nvcpus, as a guest moving its interrupts' affinity makes
 * QEMU do. 0 or -1. */
int set_routing(struct vm *v, int shift);
/* One interrupt of each kind to every vCPU. */
void inject(struct vm *v);
volatile uint64_t *guest_data(struct vm *v, int i);

/* vcpu.c */
void *vcpu_thread(void *arg);
void vcpu_kick(struct vcpu *c);

/* The guest (guest.S). */
extern const uint8_t smp_guest_start[], smp_guest_end[];
extern const uint8_t smp_tramp_start[], smp_tramp_end[];
extern const uint8_t smp_guest_irq_line[], smp_guest_irqfd[], smp_guest_msi[];
extern const uint8_t smp_guest_routed[];	/* + 16 * k: VEC_ROUTED + k */
extern const uint8_t smp_guest_ipi[];
extern const uint8_t smp_guest_other[], smp_guest_fatal[];

#endif
