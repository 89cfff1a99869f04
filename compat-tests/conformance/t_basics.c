// SPDX-License-Identifier: GPL-2.0
/* docs/api.md sections 1 and 4: the probe, flags checked first on every
 * call, EUNATCH/ESRCH without bindings, argument checks of irq and
 * control, and the order of those checks. */
#include "harness.h"

/* Bits no call defines (bit 0 is KVMNG_CREATE_VCPU_BIND). */
static const unsigned int bad_flags[] = {
	1u << 1, 1u << 2, 1u << 7, 1u << 16, 1u << 30, 1u << 31, ~0u,
};
#define NBAD (sizeof(bad_flags) / sizeof(bad_flags[0]))

TEST_NOKVM(probe_answers_einval)
{
	CHECK_ERR(syscall(__NR_kvmng_run, ~0U), EINVAL);
	CHECK(kvmng_present(), "kvmng_present()");
	/* The number after the block is not a call. */
	CHECK_ERR(syscall(KVMNG_SYSCALL_BASE + KVMNG_SYSCALL_COUNT, 0, 0, 0, 0, 0, 0), ENOSYS);
}

TEST_NOKVM(unknown_flags_are_einval_on_every_call_first)
{
	for (unsigned int i = 0; i < NBAD; i++) {
		unsigned int f = bad_flags[i];
		/* Every other argument is wrong too: flags are checked first. */
		CHECK_ERR(kvmng_create_vm(-1, 0, f), EINVAL);
		CHECK_ERR(kvmng_bind_vm(-7, f), EINVAL);
		CHECK_ERR(kvmng_create_vcpu(0, f | KVMNG_CREATE_VCPU_BIND), EINVAL);
		CHECK_ERR(kvmng_bind_vcpu(-7, f), EINVAL);
		CHECK_ERR(kvmng_run(f), EINVAL);
		CHECK_ERR(kvmng_vcpu_state((void *)8, 1000, f), EINVAL);
		CHECK_ERR(kvmng_irq(99, 1, 1, f), EINVAL);
		CHECK_ERR(kvmng_memory_map((void *)8, 1000, f), EINVAL);
		CHECK_ERR(kvmng_control(99, 0, 0, f), EINVAL);
		CHECK_ERR(kvmng_ioregion(99, (void *)8, f), EINVAL);
	}
}

TEST_NOKVM(flags_are_32_bits_wide)
{
	/* flags is an unsigned int: the upper half of the register is not
	 * part of it (the kernel truncates; so does the emulation). */
	CHECK_ERR(syscall(__NR_kvmng_run, 1UL << 32), ESRCH);
	CHECK_ERR(syscall(__NR_kvmng_run, (1UL << 32) | 2), EINVAL);
}

TEST_NOKVM(no_binding_gives_eunatch_and_esrch)
{
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, NULL, 0);

	CHECK_ERR(kvmng_create_vcpu(0, 0), EUNATCH);
	CHECK_ERR(kvmng_create_vcpu(0, KVMNG_CREATE_VCPU_BIND), EUNATCH);
	CHECK_ERR(kvmng_run(0), ESRCH);
	CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), ESRCH);
	/* ESRCH comes before E2BIG and EFAULT. */
	CHECK_ERR(kvmng_vcpu_state((void *)8, 65, 0), ESRCH);
	CHECK(e.result == 0x5eed, "nothing written without a vCPU (result %d)", e.result);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_LINE, 0, 1, 0), EUNATCH);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_INTERRUPT, 0x20, 0, 0), ESRCH);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_NMI, 0, 0, 0), ESRCH);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_SMI, 0, 0, 0), ESRCH);
	/* EUNATCH comes before E2BIG and EFAULT. */
	CHECK_ERR(kvmng_memory_map((void *)8, 257, 0), EUNATCH);
	CHECK_ERR(kvmng_memory_map(NULL, 0, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_API_VERSION, 0, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VM, KVM_CHECK_EXTENSION, 0, 0), EUNATCH);
	CHECK_ERR(kvmng_control(KVMNG_SCOPE_VCPU, KVM_GET_REGS, 0, 0), ESRCH);
	CHECK_RET(kvmng_bind_vm(KVMNG_UNBIND, 0), 0);
	CHECK_RET(kvmng_bind_vcpu(KVMNG_UNBIND, 0), 0);
}

TEST_NOKVM(irq_and_control_argument_checks_come_before_binding_checks)
{
	/* Unknown kind, or nr/level not 0 where they must be: EINVAL. */
	CHECK_ERR(kvmng_irq(0, 0, 0, 0), EINVAL);
	CHECK_ERR(kvmng_irq(5, 0, 0, 0), EINVAL);
	CHECK_ERR(kvmng_irq(~0u, 0, 0, 0), EINVAL);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_INTERRUPT, 0x20, 1, 0), EINVAL);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_NMI, 1, 0, 0), EINVAL);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_NMI, 0, 1, 0), EINVAL);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_SMI, 2, 0, 0), EINVAL);
	CHECK_ERR(kvmng_irq(KVMNG_IRQ_SMI, 0, 2, 0), EINVAL);
	/* Unknown scope: EINVAL before EUNATCH. */
	CHECK_ERR(kvmng_control(3, KVM_GET_API_VERSION, 0, 0), EINVAL);
	CHECK_ERR(kvmng_control(~0u, KVM_GET_API_VERSION, 0, 0), EINVAL);
}
