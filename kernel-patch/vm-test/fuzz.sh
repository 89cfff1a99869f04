#!/usr/bin/env bash
# fuzz.sh: boot the kvmng kernel under QEMU TCG and run kvmng-fuzz
# --differential in it: the kernel's kvmng syscalls (the native backend)
# against the library's emulation of them (the legacy backend), the same
# seeded rounds on both (`make vm-fuzz`; docs/reliability.md).
#
#   fuzz.sh [VARIANT...]      default: y
#
# Prints the executions, the rate under TCG, the divergences and the
# census of calls per syscall and per errno, with every syscall and
# documented errno not reached named. Results in target/vm-fuzz/V/
# (results.tsv, fuzz.log, report.txt, console.log). Exit status 1 on any
# divergence, crash, hang, or a guest kernel oops.
#
# Needs the kernel (make kernel) and target/release/kvmng-fuzz (the
# Makefile target builds it). Environment: VMFUZZ_EXECS (default 1000000),
# VMFUZZ_SECONDS (a time limit for the fuzzer, default 5400),
# VMFUZZ_MAX_DIVERGENCES (stop after this many, default 20), VMFUZZ_SEED
# (default: the time), VMFUZZ_MEM (2G), VMFUZZ_SMP (3), VMFUZZ_TIMEOUT (the
# whole boot, default VMFUZZ_SECONDS + 900), VMFUZZ_KDIR_y, VMFUZZ_KDIR_m,
# VMFUZZ_GUEST (a script to run in the guest instead of fuzz-guest.sh, same
# arguments: for debugging).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=vm-fuzz
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$here/lib.sh"
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(y)
W=${VMFUZZ_WORK:-$repo/target/vm-fuzz}
execs=${VMFUZZ_EXECS:-1000000}
secs=${VMFUZZ_SECONDS:-5400}
seed=${VMFUZZ_SEED:-$(date +%s)}
maxdiv=${VMFUZZ_MAX_DIVERGENCES:-20}
mem=${VMFUZZ_MEM:-2G}
smp=${VMFUZZ_SMP:-3} # tests on CPUs 1-2, CPU 0 out of SVM (lib.sh, guest_start)
boot_timeout=${VMFUZZ_TIMEOUT:-$((secs + 900))}
# Multi-threaded TCG, as vm-test: the fuzzer flips KVM's LAPIC static
# keys thousands of times, which once killed the guest with the TCG int3
# race ("Oops: int3" in kvm_apic_accept_events() at 455 s of the 02:11
# run); the test kernels have no jump labels any more, so nothing patches
# code at run time (docs/reliability.md, section 6).
accel=${VMFUZZ_ACCEL:-tcg}

need_tools qemu-system-x86_64 cpio gzip
kdir() { kernel_dir "VMFUZZ_KDIR_$1" "$1"; }
need_kernels VMFUZZ_KDIR_ "make kernel" "${variants[@]}"

stage "$W" "${VMFUZZ_GUEST:-$here/fuzz-guest.sh}" "cargo build --release -p kvmng-fuzz" target/release/kvmng-fuzz

fail=0
for v in "${variants[@]}"; do
	kd=$(kdir "$v")
	R=$W/$v
	rm -rf "$R"
	mkdir -p "$R"
	t0=$SECONDS
	echo "==> vm-fuzz $v: $(cat "$kd/kernelrelease") from $kd, $execs executions (at most $secs s), seed $seed (console: $R/console.log)"
	rc=0
	boot_guest "$boot_timeout" "$R/console.log" "$W" "$kd" "$v,$R,$kd,$execs,$secs,$seed,$maxdiv" \
		-accel "$accel" -cpu max -m "$mem" -smp "$smp" || rc=$?
	[ -f "$R/results.tsv" ] || : > "$R/results.tsv"
	oops=$(guest_oops "$R/console.log")
	[ -n "$oops" ] && printf 'guest-kernel\tFAIL\t\t%s\n' "${oops#*] } (console.log)" >> "$R/results.tsv"
	console_check "$R/console.log" >> "$R/results.tsv"
	[ "$rc" = 124 ] && printf 'vm\tFAIL\t\tdid not finish within %s s\n' "$boot_timeout" >> "$R/results.tsv"
	grep -q '^VMTEST: done' "$R/console.log" ||
		printf 'guest\tFAIL\t\tfuzz-guest.sh did not finish (last line: %s)\n' "$(last_line "$R/console.log")" >> "$R/results.tsv"
	status=PASS
	grep -q $'\tFAIL\t' "$R/results.tsv" && status=FAIL
	echo
	echo "kvmng vm-fuzz, variant $v ($(cat "$kd/kernelrelease")): $status in $(fmt_secs $((SECONDS - t0)))"
	awk -F'\t' '{printf "  %-18s %-4s %7s  %s\n", $1, $2, $3, $4}' "$R/results.tsv"
	[ -f "$R/report.txt" ] && sed 's/^/  /' "$R/report.txt"
	echo
	[ $status = PASS ] || fail=1
done
exit $fail
