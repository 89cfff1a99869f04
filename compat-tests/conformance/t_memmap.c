// SPDX-License-Identifier: GPL-2.0
/* docs/api.md 5.8 kvmng_memory_map: order of checks, limits, in-order
 * application, all-or-nothing. */
#include "harness.h"

#include <sys/mman.h>

static struct kvm_userspace_memory_region2 region(uint32_t slot, uint64_t gpa, uint64_t size,
						  void *host)
{
	struct kvm_userspace_memory_region2 r;
	memset(&r, 0, sizeof(r));
	r.slot = slot;
	r.guest_phys_addr = gpa;
	r.memory_size = size;
	r.userspace_addr = (uintptr_t)host;
	return r;
}

static void *pages(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(p != MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

TEST(memory_map_checks_and_limits)
{
	struct vm v;
	static struct kvm_userspace_memory_region2 many[KVMNG_MEMORY_MAP_MAX + 1];

	vm_setup(&v);
	CHECK_ERR(kvmng_memory_map(NULL, 0, 1), EINVAL);
	CHECK_ERR(kvmng_memory_map((void *)8, KVMNG_MEMORY_MAP_MAX + 1, 0), E2BIG);
	CHECK_ERR(kvmng_memory_map(many, ~0u, 0), E2BIG);
	CHECK_RET(kvmng_memory_map(NULL, 0, 0), 0);
	CHECK_RET(kvmng_memory_map((void *)8, 0, 0), 0);
	CHECK_ERR(kvmng_memory_map((void *)8, 1, 0), EFAULT);
	CHECK_ERR(kvmng_memory_map(unmapped_page(), 3, 0), EFAULT);

	/* 256 regions in one call: create 256 slots (1..256) of one page
	 * each, then delete them all in one call. */
	uint8_t *mem = pages(KVMNG_MEMORY_MAP_MAX * 4096);
	for (int i = 0; i < KVMNG_MEMORY_MAP_MAX; i++)
		many[i] = region(1 + i, 0x100000 + i * 4096, 4096, mem + i * 4096);
	CHECK_RET(kvmng_memory_map(many, KVMNG_MEMORY_MAP_MAX, 0), KVMNG_MEMORY_MAP_MAX);
	for (int i = 0; i < KVMNG_MEMORY_MAP_MAX; i++)
		many[i].memory_size = 0;
	CHECK_RET(kvmng_memory_map(many, KVMNG_MEMORY_MAP_MAX, 0), KVMNG_MEMORY_MAP_MAX);

	/* Regions running off the end of a mapping: EFAULT, nothing done. */
	struct kvm_userspace_memory_region2 *edge = pages(8192);
	munmap((char *)edge + 4096, 4096);
	struct kvm_userspace_memory_region2 *last = (void *)((char *)edge + 4096 - sizeof(*last));
	*last = region(7, 0x200000, 4096, mem);
	CHECK_ERR(kvmng_memory_map(last, 2, 0), EFAULT);
	struct kvm_userspace_memory_region2 probe = region(8, 0x200000, 4096, mem);
	CHECK_RET(kvmng_memory_map(&probe, 1, 0), 1);	/* slot 7 was not made */
}

TEST(memory_map_is_all_or_nothing)
{
	struct vm v;
	uint8_t *mem = pages(0x40000);

	vm_setup(&v);
	/* Region 0 is fine, region 1 overlaps slot 0: EEXIST, and region 0
	 * is not applied. */
	struct kvm_userspace_memory_region2 two[2] = {
		region(1, 0x100000, 0x10000, mem),
		region(2, 0x8000, 0x10000, mem + 0x10000),
	};
	CHECK_ERR(kvmng_memory_map(two, 2, 0), EEXIST);
	/* Slot 1's range is free: a slot 3 over it goes in. */
	struct kvm_userspace_memory_region2 over = region(3, 0x100000, 0x10000, mem + 0x20000);
	CHECK_RET(kvmng_memory_map(&over, 1, 0), 1);

	/* A bad region after a deletion: the deletion is undone. */
	struct kvm_userspace_memory_region2 del_then_bad[2] = {
		region(3, 0x100000, 0, NULL),
		region(4, 0x300001, 0x1000, mem),	/* misaligned: EINVAL */
	};
	CHECK_ERR(kvmng_memory_map(del_then_bad, 2, 0), EINVAL);
	struct kvm_userspace_memory_region2 clash = region(5, 0x100000, 0x1000, mem + 0x30000);
	CHECK_ERR(kvmng_memory_map(&clash, 1, 0), EEXIST);	/* slot 3 is back */

	/* Applied in order: delete slot 3 and create slot 6 over the same
	 * addresses in one call. */
	struct kvm_userspace_memory_region2 swap[2] = {
		region(3, 0x100000, 0, NULL),
		region(6, 0x100000, 0x10000, mem + 0x30000),
	};
	CHECK_RET(kvmng_memory_map(swap, 2, 0), 2);
}

TEST(memory_map_replacement_is_seen_by_the_guest)
{
	struct vm v;
	uint8_t *other = pages(GUEST_LOW_MEM);

	vm_setup(&v);
	vm_load_real(&v, guest_real_mmio, guest_real_mmio_end - guest_real_mmio);
	/* Put real_pio in a second backing and swap slot 0 to it in one
	 * call: delete, then create over the same addresses. */
	memcpy(other + GUEST_LOAD_ADDR, guest_real_pio, guest_real_pio_end - guest_real_pio);
	struct kvm_userspace_memory_region2 swap[2] = {
		region(0, 0, 0, NULL),
		region(0, 0, GUEST_LOW_MEM, other),
	};
	CHECK_RET(kvmng_memory_map(swap, 2, 0), 2);
	int reason = run_once(&v);
	CHECK(reason == KVM_EXIT_IO && v.run->io.port == GUEST_CONSOLE_PORT,
	      "the guest runs the new backing's code (exit %d)", reason);
}

/* api.md 5.8 "the map is as before": a slot made with the original
 * KVM_SET_USER_MEMORY_REGION through kvmng_control is restored by a
 * failed update like any other. */
TEST(memory_map_rollback_restores_a_slot_made_with_the_v1_ioctl)
{
	struct vm v;
	struct kvm_userspace_memory_region v1 = {
		.slot = 31, .guest_phys_addr = 0x400000, .memory_size = 4096,
	};

	vm_setup(&v);
	uint8_t *mem = pages(4096);
	v1.userspace_addr = (uintptr_t)mem;
	CHECK_RET(kvmng_control(KVMNG_SCOPE_VM, KVM_SET_USER_MEMORY_REGION, (uintptr_t)&v1, 0), 0);
	/* Slot 31 exists: a slot over the same addresses overlaps it. */
	struct kvm_userspace_memory_region2 over = region(30, 0x400000, 4096, mem);
	CHECK_ERR(kvmng_memory_map(&over, 1, 0), EEXIST);
	struct kvm_userspace_memory_region2 both[2] = {
		region(31, 0, 0, NULL),			/* delete slot 31 */
		region(32, 0x500000, 4095, mem),	/* invalid: not a page multiple */
	};
	CHECK_ERR(kvmng_memory_map(both, 2, 0), EINVAL);
	CHECK_ERR(kvmng_memory_map(&over, 1, 0), EEXIST);	/* slot 31 is back */
	struct kvm_userspace_memory_region2 moved = region(31, 0x600000, 4096, mem);
	CHECK_RET(kvmng_memory_map(&moved, 1, 0), 1);
	CHECK_RET(kvmng_memory_map(&over, 1, 0), 1);		/* and its old place is free */
}
