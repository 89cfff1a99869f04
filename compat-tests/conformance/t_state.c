// SPDX-License-Identifier: GPL-2.0
/* docs/api.md 5.6 kvmng_vcpu_state: limits, EFAULT, validation before
 * execution, execution stopping at the first failure, per-entry results,
 * and agreement with the legacy ioctls. */
#include "harness.h"

#include <sys/ioctl.h>
#include <sys/mman.h>

#define NOT_DONE KVMNG_STATE_NOT_DONE
#define UNTOUCHED 0x5eed

static void check_results(const struct kvmng_state_entry *e, const int *want, int n,
			  const char *what)
{
	for (int i = 0; i < n; i++)
		CHECK(e[i].result == want[i], "%s: entry %d result %d, expected %d",
		      what, i, e[i].result, want[i]);
}

static void set_rax(uint64_t value)
{
	struct kvm_regs regs;
	struct kvmng_state_entry e[2] = {
		entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs)),
		entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs)),
	};
	REQUIRE(kvmng_vcpu_state(&e[0], 1, 0) == 1, "GET REGS: %s", errname(errno));
	regs.rax = value;
	REQUIRE(kvmng_vcpu_state(&e[1], 1, 0) == 1, "SET REGS: %s", errname(errno));
}

static uint64_t get_rax(void)
{
	struct kvm_regs regs;
	struct kvmng_state_entry e = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	REQUIRE(kvmng_vcpu_state(&e, 1, 0) == 1, "GET REGS: %s", errname(errno));
	return regs.rax;
}

TEST(state_count_limits_and_bad_arrays)
{
	struct vm v;
	struct kvm_mp_state mp;
	static struct kvmng_state_entry many[KVMNG_STATE_MAX_ENTRIES + 1];

	vm_setup(&v);
	for (int i = 0; i <= KVMNG_STATE_MAX_ENTRIES; i++)
		many[i] = entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, &mp, sizeof(mp));
	/* E2BIG: nothing read or written. */
	CHECK_ERR(kvmng_vcpu_state(many, KVMNG_STATE_MAX_ENTRIES + 1, 0), E2BIG);
	CHECK(many[0].result == UNTOUCHED, "E2BIG writes no result (%d)", many[0].result);
	CHECK_ERR(kvmng_vcpu_state(many, ~0u, 0), E2BIG);
	/* E2BIG comes before EFAULT. */
	CHECK_ERR(kvmng_vcpu_state((void *)8, KVMNG_STATE_MAX_ENTRIES + 1, 0), E2BIG);
	/* The maximum is accepted. */
	CHECK_RET(kvmng_vcpu_state(many, KVMNG_STATE_MAX_ENTRIES, 0), KVMNG_STATE_MAX_ENTRIES);
	CHECK(many[KVMNG_STATE_MAX_ENTRIES - 1].result == 0, "last of 64 done");
	CHECK(many[KVMNG_STATE_MAX_ENTRIES].result == UNTOUCHED, "entry 65 untouched");
	/* count 0: 0, without reading. */
	CHECK_RET(kvmng_vcpu_state(NULL, 0, 0), 0);
	CHECK_RET(kvmng_vcpu_state((void *)8, 0, 0), 0);
	/* Unreadable array: EFAULT. */
	CHECK_ERR(kvmng_vcpu_state((void *)8, 1, 0), EFAULT);
	CHECK_ERR(kvmng_vcpu_state(unmapped_page(), 2, 0), EFAULT);

	/* An array that can be read but not written back: EFAULT. */
	struct kvmng_state_entry *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(ro != MAP_FAILED, "mmap");
	ro[0] = entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, &mp, sizeof(mp));
	REQUIRE(mprotect(ro, 4096, PROT_READ) == 0, "mprotect");
	CHECK_ERR(kvmng_vcpu_state(ro, 1, 0), EFAULT);
	/* An array that runs off the end of the mapping: EFAULT. */
	struct kvmng_state_entry *edge = mmap(NULL, 8192, PROT_READ | PROT_WRITE,
					      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(edge != MAP_FAILED, "mmap");
	munmap((char *)edge + 4096, 4096);
	struct kvmng_state_entry *last = (void *)((char *)edge + 4096 - sizeof(*last));
	*last = entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, &mp, sizeof(mp));
	CHECK_RET(kvmng_vcpu_state(last, 1, 0), 1);
	CHECK_ERR(kvmng_vcpu_state(last, 2, 0), EFAULT);
}

TEST(state_validation_comes_before_execution)
{
	struct vm v;
	struct kvm_regs regs;
	struct kvm_mp_state mp;

	vm_setup(&v);
	set_rax(0x1111);
	struct kvmng_state_entry base = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	REQUIRE(kvmng_vcpu_state(&base, 1, 0) == 1, "GET REGS");
	regs.rax = 0x2222;

	/* Each bad entry in position 1, after a SET that must not run. */
	struct { uint32_t kind, op, size; const char *what; } bad[] = {
		{ 0, KVMNG_STATE_GET, 64, "kind 0" },
		{ KVMNG_STATE_KIND_MAX + 1, KVMNG_STATE_GET, 4096, "kind 15" },
		{ 0x10000, KVMNG_STATE_GET, 4096, "kind 0x10000" },
		{ KVMNG_STATE_REGS, 0, sizeof(regs), "op 0" },
		{ KVMNG_STATE_REGS, 3, sizeof(regs), "op 3" },
		{ KVMNG_STATE_REGS, KVMNG_STATE_GET, 143, "REGS size 143" },
		{ KVMNG_STATE_SREGS, KVMNG_STATE_GET, 311, "SREGS size 311" },
		{ KVMNG_STATE_SREGS2, KVMNG_STATE_GET, 319, "SREGS2 size 319" },
		{ KVMNG_STATE_FPU, KVMNG_STATE_GET, 415, "FPU size 415" },
		{ KVMNG_STATE_XSAVE, KVMNG_STATE_GET, 4095, "XSAVE size 4095" },
		{ KVMNG_STATE_XSAVE2, KVMNG_STATE_GET, 4095, "XSAVE2 size 4095" },
		{ KVMNG_STATE_XCRS, KVMNG_STATE_GET, 391, "XCRS size 391" },
		{ KVMNG_STATE_MSRS, KVMNG_STATE_GET, 7, "MSRS size 7" },
		{ KVMNG_STATE_LAPIC, KVMNG_STATE_GET, 1023, "LAPIC size 1023" },
		{ KVMNG_STATE_EVENTS, KVMNG_STATE_GET, 63, "EVENTS size 63" },
		{ KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, 3, "MP_STATE size 3" },
		{ KVMNG_STATE_DEBUGREGS, KVMNG_STATE_GET, 127, "DEBUGREGS size 127" },
		{ KVMNG_STATE_CPUID, KVMNG_STATE_GET, 7, "CPUID size 7" },
		{ KVMNG_STATE_ONE_REG, KVMNG_STATE_GET, 15, "ONE_REG size 15" },
	};
	static char big[8192];
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kvmng_state_entry e[3] = {
			entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs)),
			entry(bad[i].kind, bad[i].op, big, bad[i].size),
			entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, &mp, sizeof(mp)),
		};
		int want[3] = { NOT_DONE, -EINVAL, NOT_DONE };
		CHECK_ERR(kvmng_vcpu_state(e, 3, 0), EINVAL);
		check_results(e, want, 3, bad[i].what);
		CHECK(get_rax() == 0x1111, "%s: the SET before it did not run", bad[i].what);
	}
	/* A bad address is not a validation failure: the SET before it runs. */
	(void)v;
}

TEST(state_execution_stops_at_the_first_failure)
{
	struct vm v;
	struct kvm_regs regs;
	struct kvm_sregs sregs;

	vm_setup(&v);
	set_rax(0x1111);
	struct kvmng_state_entry get = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	REQUIRE(kvmng_vcpu_state(&get, 1, 0) == 1, "GET REGS");
	regs.rax = 0x3333;
	struct kvmng_state_entry e[4] = {
		entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs)),
		entry(KVMNG_STATE_SREGS, KVMNG_STATE_GET, (void *)8, sizeof(sregs)),
		entry(KVMNG_STATE_SREGS, KVMNG_STATE_GET, &sregs, sizeof(sregs)),
		entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs)),
	};
	int want[4] = { 0, -EFAULT, NOT_DONE, NOT_DONE };
	CHECK_ERR(kvmng_vcpu_state(e, 4, 0), EFAULT);
	check_results(e, want, 4, "bad addr in entry 1");
	CHECK(get_rax() == 0x3333, "the SET before the failure stays done (rax %#lx)",
	      (unsigned long)get_rax());

	/* MSRS: a buffer too short for nmsrs fails the entry with EINVAL;
	 * nmsrs >= 256 with E2BIG, as KVM_GET_MSRS answers. */
	struct { struct kvm_msrs h; struct kvm_msr_entry e[2]; } msrs;
	memset(&msrs, 0, sizeof(msrs));
	msrs.h.nmsrs = 2;
	msrs.e[0].index = 0x174;	/* IA32_SYSENTER_CS */
	msrs.e[1].index = 0x10;		/* IA32_TSC */
	struct kvmng_state_entry m = entry(KVMNG_STATE_MSRS, KVMNG_STATE_GET, &msrs, 8 + 16);
	CHECK_ERR(kvmng_vcpu_state(&m, 1, 0), EINVAL);
	CHECK(m.result == -EINVAL, "short MSR buffer: result %d", m.result);
	m = entry(KVMNG_STATE_MSRS, KVMNG_STATE_GET, &msrs, sizeof(msrs));
	CHECK_RET(kvmng_vcpu_state(&m, 1, 0), 1);
	CHECK(m.result == 2, "MSRS result is the number processed (%d)", m.result);
	static struct { struct kvm_msrs h; struct kvm_msr_entry e[300]; } lots;
	lots.h.nmsrs = 300;
	m = entry(KVMNG_STATE_MSRS, KVMNG_STATE_GET, &lots, sizeof(lots));
	CHECK_ERR(kvmng_vcpu_state(&m, 1, 0), E2BIG);
	CHECK(m.result == -E2BIG, "nmsrs 300: result %d", m.result);
	/* An unknown MSR: the ioctl stops there and says how many it did. */
	msrs.e[1].index = 0xdeadbeef;
	m = entry(KVMNG_STATE_MSRS, KVMNG_STATE_GET, &msrs, sizeof(msrs));
	CHECK_RET(kvmng_vcpu_state(&m, 1, 0), 1);
	CHECK(m.result == 1, "MSRS stops at an unknown MSR: result %d", m.result);
}

TEST(state_cpuid_get_too_small_is_e2big)
{
	struct vm v;
	static struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[256]; } cpuid;

	vm_setup(&v);
	cpuid.h.nent = 256;
	long r = kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_SUPPORTED_CPUID, (unsigned long)&cpuid, 0);
	REQUIRE(r == 0, "KVM_GET_SUPPORTED_CPUID through control: %ld/%s", r, errname(errno));
	REQUIRE(cpuid.h.nent > 1, "supported cpuid has %u entries", cpuid.h.nent);
	uint32_t n = cpuid.h.nent;
	struct kvmng_state_entry e = entry(KVMNG_STATE_CPUID, KVMNG_STATE_SET, &cpuid,
					   8 + 40 * n);
	CHECK_RET(kvmng_vcpu_state(&e, 1, 0), 1);
	/* A buffer shorter than nent says: EINVAL. */
	e = entry(KVMNG_STATE_CPUID, KVMNG_STATE_GET, &cpuid, 8 + 40 * (n - 1));
	CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), EINVAL);
	/* nent too small for the vCPU's table: the ioctl's E2BIG. */
	cpuid.h.nent = 1;
	e = entry(KVMNG_STATE_CPUID, KVMNG_STATE_GET, &cpuid, sizeof(cpuid));
	CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), E2BIG);
	CHECK(e.result == -E2BIG, "result %d", e.result);
	cpuid.h.nent = 256;
	e = entry(KVMNG_STATE_CPUID, KVMNG_STATE_GET, &cpuid, sizeof(cpuid));
	CHECK_RET(kvmng_vcpu_state(&e, 1, 0), 1);
	static struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[256]; } direct;
	direct.h.nent = 256;
	CHECK_RET(kioctl(v.vcpu, KVM_GET_CPUID2, &direct), 0);
	CHECK(cpuid.h.nent == direct.h.nent && cpuid.h.nent > 0 &&
	      !memcmp(cpuid.e, direct.e, sizeof(direct.e[0]) * direct.h.nent),
	      "GET gives what KVM_GET_CPUID2 gives (%u/%u entries)", cpuid.h.nent,
	      direct.h.nent);
}

/* Every kind, GET through kvmng and through the legacy ioctl on the vCPU
 * fd: same outcome, same bytes. */
TEST(state_kinds_agree_with_the_legacy_ioctls)
{
	struct vm v;
	static unsigned char a[16384], b[16384];
	struct { uint32_t kind; unsigned long get; uint32_t size; const char *name; } kinds[] = {
		{ KVMNG_STATE_REGS, KVM_GET_REGS, sizeof(struct kvm_regs), "REGS" },
		{ KVMNG_STATE_SREGS, KVM_GET_SREGS, sizeof(struct kvm_sregs), "SREGS" },
		{ KVMNG_STATE_SREGS2, KVM_GET_SREGS2, sizeof(struct kvm_sregs2), "SREGS2" },
		{ KVMNG_STATE_FPU, KVM_GET_FPU, sizeof(struct kvm_fpu), "FPU" },
		{ KVMNG_STATE_XSAVE, KVM_GET_XSAVE, sizeof(struct kvm_xsave), "XSAVE" },
		{ KVMNG_STATE_XCRS, KVM_GET_XCRS, sizeof(struct kvm_xcrs), "XCRS" },
		{ KVMNG_STATE_EVENTS, KVM_GET_VCPU_EVENTS, sizeof(struct kvm_vcpu_events), "EVENTS" },
		{ KVMNG_STATE_MP_STATE, KVM_GET_MP_STATE, sizeof(struct kvm_mp_state), "MP_STATE" },
		{ KVMNG_STATE_DEBUGREGS, KVM_GET_DEBUGREGS, sizeof(struct kvm_debugregs), "DEBUGREGS" },
		{ KVMNG_STATE_LAPIC, KVM_GET_LAPIC, sizeof(struct kvm_lapic_state), "LAPIC" },
	};

	vm_setup(&v);
	for (unsigned int i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		memset(a, 0xa5, sizeof(a));
		memset(b, 0xa5, sizeof(b));
		errno = 0;
		int ri = kioctl(v.vcpu, kinds[i].get, a);
		int ei = ri < 0 ? errno : 0;
		struct kvmng_state_entry e = entry(kinds[i].kind, KVMNG_STATE_GET, b, kinds[i].size);
		errno = 0;
		int rk = kvmng_vcpu_state(&e, 1, 0);
		int ek = rk < 0 ? errno : 0;
		CHECK(ei == ek, "%s: ioctl %s, kvmng %s", kinds[i].name, errname(ei), errname(ek));
		if (ei == 0 && ek == 0) {
			CHECK(rk == 1 && e.result == ri, "%s: returns 1, result %d (ioctl %d)",
			      kinds[i].name, e.result, ri);
			/* XSAVE holds nothing that changes between two reads of
			 * a vCPU that does not run. */
			CHECK(!memcmp(a, b, kinds[i].size), "%s: same bytes", kinds[i].name);
			CHECK(b[kinds[i].size] == 0xa5, "%s: nothing written past the struct",
			      kinds[i].name);
		} else {
			CHECK(e.result == -ek, "%s: result %d is -errno", kinds[i].name, e.result);
		}
	}
}

TEST(state_batch_round_trip)
{
	struct vm v;
	struct kvm_regs regs, regs2;
	struct kvm_sregs sregs, sregs2;
	struct kvm_mp_state mp, mp2;
	struct kvm_debugregs dr, dr2;

	vm_setup(&v);
	struct kvmng_state_entry get[4] = {
		entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs)),
		entry(KVMNG_STATE_SREGS, KVMNG_STATE_GET, &sregs, sizeof(sregs)),
		entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, &mp, sizeof(mp)),
		entry(KVMNG_STATE_DEBUGREGS, KVMNG_STATE_GET, &dr, sizeof(dr)),
	};
	CHECK_RET(kvmng_vcpu_state(get, 4, 0), 4);
	regs.rax = 0x1122334455667788ULL;
	regs.rbx = 0xabcdef;
	regs.r15 = 42;
	regs.rip = 0x1234;
	sregs.cr2 = 0x5000;
	sregs.ds.base = 0x100;
	dr.db[0] = 0x4000;
	/* Gets and sets mixed in one call, in array order; a larger size
	 * than the struct is allowed. */
	struct kvmng_state_entry mixed[7] = {
		entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs)),
		entry(KVMNG_STATE_SREGS, KVMNG_STATE_SET, &sregs, sizeof(sregs) + 64),
		entry(KVMNG_STATE_DEBUGREGS, KVMNG_STATE_SET, &dr, sizeof(dr)),
		entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs2, sizeof(regs2)),
		entry(KVMNG_STATE_SREGS, KVMNG_STATE_GET, &sregs2, sizeof(sregs2)),
		entry(KVMNG_STATE_MP_STATE, KVMNG_STATE_GET, &mp2, sizeof(mp2)),
		entry(KVMNG_STATE_DEBUGREGS, KVMNG_STATE_GET, &dr2, sizeof(dr2)),
	};
	CHECK_RET(kvmng_vcpu_state(mixed, 7, 0), 7);
	for (int i = 0; i < 7; i++)
		CHECK(mixed[i].result == 0, "entry %d result %d", i, mixed[i].result);
	CHECK(regs2.rax == regs.rax && regs2.rbx == regs.rbx && regs2.r15 == 42 &&
	      regs2.rip == 0x1234, "REGS read back as set");
	CHECK(sregs2.cr2 == 0x5000 && sregs2.ds.base == 0x100, "SREGS read back as set");
	CHECK(mp2.mp_state == mp.mp_state, "MP_STATE unchanged");
	CHECK(dr2.db[0] == 0x4000, "DEBUGREGS read back as set");
	/* The ioctl sees what the syscall set (one object, two interfaces). */
	struct kvm_regs via_ioctl;
	CHECK_RET(kioctl(v.vcpu, KVM_GET_REGS, &via_ioctl), 0);
	CHECK(via_ioctl.rax == regs.rax, "KVM_GET_REGS sees the kvmng SET");
}

/* api.md 5.6, validation: with several invalid entries, the first in array
 * order gets -EINVAL and every other entry, valid or not, NOT_DONE. */
TEST(state_first_invalid_entry_gets_einval)
{
	struct vm v;
	struct kvm_regs regs;

	vm_setup(&v);
	struct kvmng_state_entry e[4] = {
		entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs)),
		entry(999, KVMNG_STATE_GET, &regs, sizeof(regs)),
		entry(KVMNG_STATE_REGS, 7, &regs, sizeof(regs)),
		entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, 8),
	};
	CHECK_ERR(kvmng_vcpu_state(e, 4, 0), EINVAL);
	int want[4] = { NOT_DONE, -EINVAL, NOT_DONE, NOT_DONE };
	check_results(e, want, 4, "three invalid entries");
}

/* api.md 5.6, order of errors of one MSRS entry: the buffer against its
 * nmsrs first (EINVAL), then the ioctl's own checks (E2BIG for nmsrs of
 * 256 or more). */
TEST(state_msrs_short_buffer_before_the_nmsrs_limit)
{
	struct vm v;
	static struct { struct kvm_msrs h; struct kvm_msr_entry e[300]; } msrs;

	vm_setup(&v);
	msrs.h.nmsrs = 300;
	struct kvmng_state_entry e = entry(KVMNG_STATE_MSRS, KVMNG_STATE_GET, &msrs, 8);
	CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), EINVAL);
	CHECK(e.result == -EINVAL, "short buffer: result %d", e.result);
	e = entry(KVMNG_STATE_MSRS, KVMNG_STATE_GET, &msrs, sizeof(msrs));
	CHECK_ERR(kvmng_vcpu_state(&e, 1, 0), E2BIG);
	CHECK(e.result == -E2BIG, "nmsrs 300: result %d", e.result);
}

/* api.md 5.6: a CPUID GET whose nent is too small fails like any entry:
 * the batch stops there, later entries are NOT_DONE, the call fails with
 * E2BIG. */
TEST(state_cpuid_e2big_stops_the_batch)
{
	struct vm v;
	struct kvm_regs regs;
	static struct { struct kvm_cpuid2 h; struct kvm_cpuid_entry2 e[256]; } cpuid;

	vm_setup(&v);
	cpuid.h.nent = 256;
	long r = kvmng_control(KVMNG_SCOPE_SYSTEM, KVM_GET_SUPPORTED_CPUID, (unsigned long)&cpuid, 0);
	REQUIRE(r == 0 && cpuid.h.nent > 1, "KVM_GET_SUPPORTED_CPUID: %ld/%s", r, errname(errno));
	struct kvmng_state_entry set = entry(KVMNG_STATE_CPUID, KVMNG_STATE_SET, &cpuid,
					     8 + 40 * cpuid.h.nent);
	REQUIRE(kvmng_vcpu_state(&set, 1, 0) == 1, "SET CPUID: %s", errname(errno));
	cpuid.h.nent = 1;
	struct kvmng_state_entry e[2] = {
		entry(KVMNG_STATE_CPUID, KVMNG_STATE_GET, &cpuid, sizeof(cpuid)),
		entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs)),
	};
	CHECK_ERR(kvmng_vcpu_state(e, 2, 0), E2BIG);
	int want[2] = { -E2BIG, NOT_DONE };
	check_results(e, want, 2, "CPUID GET nent 1, then REGS");
}

/* api.md 5.6: when the results cannot be written back (EFAULT), the
 * entries have run: a SET took effect. */
TEST(state_unwritable_results_after_execution)
{
	struct vm v;
	struct kvm_regs regs;

	vm_setup(&v);
	set_rax(1);
	struct kvmng_state_entry get = entry(KVMNG_STATE_REGS, KVMNG_STATE_GET, &regs, sizeof(regs));
	REQUIRE(kvmng_vcpu_state(&get, 1, 0) == 1, "GET REGS: %s", errname(errno));
	regs.rax = 0xFEED;
	struct kvmng_state_entry *ro = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
					    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	REQUIRE(ro != MAP_FAILED, "mmap: %s", strerror(errno));
	*ro = entry(KVMNG_STATE_REGS, KVMNG_STATE_SET, &regs, sizeof(regs));
	REQUIRE(mprotect(ro, 4096, PROT_READ) == 0, "mprotect: %s", strerror(errno));
	CHECK_ERR(kvmng_vcpu_state(ro, 1, 0), EFAULT);
	CHECK(get_rax() == 0xFEED, "the SET ran (rax %#llx)", (unsigned long long)get_rax());
	munmap(ro, 4096);
}
