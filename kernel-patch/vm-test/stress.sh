#!/usr/bin/env bash
# stress.sh: boot the debug kernel (KASAN, lockdep, PROVE_RCU, kmemleak) and
# the KVM=m kernel under QEMU TCG and run kvmng-stress in them natively
# (`make vm-stress`; docs/reliability.md).
#
#   stress.sh [VARIANT...]      default: debug m
#
# debug: kvmng-stress syscall (random arguments, bind/unbind/exit churn,
# exit in the middle of kvmng_run, mm teardown, fork while bound) natively,
# and kvmng-stress ioctl through libkvmshim.so (on the native syscalls),
# the security cases of the conformance suite (t_security.c) natively, then
# the kvmng selftests of the patched tree (kvmng_test,
# kvmng_memory_map_test, kvmng_ioregion_test: issue 15's findings), then
# kmemleak scanned. m: the syscall scenarios, then kvm.ko unloaded and
# reloaded in a loop while two processes make VMs through the syscalls.
# Then the console is searched for splats (KASAN, lockdep, RCU, WARNING,
# BUG, Oops). Prints, per variant, the operations, the splats and the
# leaks; results in target/vm-stress/V/ (results.tsv, *.log, console.log,
# kmemleak.txt, splats.txt). Exit status 1 on any failed step, splat or
# kvm leak.
#
# Needs the kernels (kernel-patch/scripts/kernel.sh debug m; the debug
# variant runs the selftests built with the y kernel, kernel.sh y), and
# build/stress/kvmng-stress, target/release/libkvmshim.so (the Makefile
# target builds them). Environment: STRESS_SECONDS (per kvmng-stress run,
# default 120), STRESS_MEM (4G), STRESS_SMP (3), STRESS_TIMEOUT (per boot,
# default 2400 s), STRESS_KDIR_debug, STRESS_KDIR_m (a kernel directory of
# the same layout instead of kernel.sh's cache entry for the current series;
# STRESS_KDIR_y for the selftests),
# STRESS_ACCEL (QEMU's -accel for every variant; default tcg, multi-threaded).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=vm-stress
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$here/lib.sh"
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(debug m)
W=${STRESS_WORK:-$repo/target/vm-stress}
secs=${STRESS_SECONDS:-120}
mem=${STRESS_MEM:-4G}
smp=${STRESS_SMP:-3} # tests on CPUs 1-2, CPU 0 out of SVM (lib.sh, guest_start)
boot_timeout=${STRESS_TIMEOUT:-2400}

need_tools qemu-system-x86_64 cpio gzip
kdir() { kernel_dir "STRESS_KDIR_$1" "$1"; }
need_kernels STRESS_KDIR_ "kernel-patch/scripts/kernel.sh ${variants[*]}" "${variants[@]}"
# The kvmng selftests are built with the y kernel, from the same series.
st=
if [[ " ${variants[*]} " == *" debug "* ]]; then
	need_kernels STRESS_KDIR_ "kernel-patch/scripts/kernel.sh y (the kvmng selftests)" y
	st=$(kdir y)/selftests
fi

# ./init runs stage/guest.sh: here it is the stress script.
stage "$W" "$here/stress-guest.sh" "make stress conformance; cargo build --release -p kvmshim" \
	build/stress/kvmng-stress target/release/libkvmshim.so build/conformance/conformance

# The kernel's complaints, by kind, one line each.
SPLATS='BUG: KASAN|WARNING: possible circular locking|WARNING: possible recursive locking|WARNING: inconsistent lock state|INFO: possible irq lock inversion|WARNING: suspicious RCU usage|BUG: sleeping function called from invalid context|BUG: scheduling while atomic|WARNING:|BUG:|Oops|kernel BUG|general protection fault|INFO: task .* blocked for more than|rcu: INFO: rcu_(sched|preempt) detected stalls|watchdog: BUG: soft lockup|list_(add|del) corruption|UBSAN'

run_variant() {
	local v=$1 kd R t0=$SECONDS rc accel status=PASS params=(kasan_multi_shot)
	kd=$(kdir "$v")
	R=$W/$v
	rm -rf "$R"
	mkdir -p "$R"
	# Multi-threaded TCG: true parallelism for the races under test. The
	# kernels patch no code at run time (no jump labels: vm-test.sh).
	accel=${STRESS_ACCEL:-tcg}
	# KASAN on a 5-level guest (-cpu max has LA57) reports a wild access
	# when an interrupt lands in identify_cpu() while the boot CPU's
	# capability words are cleared: 3 boots in 40, none with no5lvl
	# (docs/reliability.md, section 4, arm B4). It is upstream's false
	# positive, it turns lockdep off for the rest of the boot (KASAN taints
	# with LOCKDEP_NOW_UNRELIABLE) and the splat search fails the run, so
	# the KASAN kernel boots with 4-level paging.
	[ "$v" = debug ] && params+=(no5lvl)
	echo "==> vm-stress $v: $(cat "$kd/kernelrelease") from $kd, $secs s per run (console: $R/console.log)"
	rc=0
	boot_guest "$boot_timeout" "$R/console.log" "$W" "$kd" "$v,$R,$kd,$secs,$st" \
		-accel "$accel" -cpu max -m "$mem" -smp "$smp" -- "${params[@]}" || rc=$?
	[ -f "$R/results.tsv" ] || : > "$R/results.tsv"
	grep -a -E "$SPLATS" "$R/console.log" | sed 's/^\[ *[0-9.]*\] //' > "$R/splats.txt" || true
	local splats
	splats=$(wc -l < "$R/splats.txt")
	if [ "$splats" != 0 ]; then
		printf 'splats\tFAIL\t\t%s\n' "$splats on the console: $(head -1 "$R/splats.txt" | cut -c1-120) (splats.txt)" >> "$R/results.tsv"
	else
		printf 'splats\tPASS\t\t%s\n' "0 on the console (KASAN, lockdep, RCU, WARNING, BUG, Oops, hung task, stall)" >> "$R/results.tsv"
	fi
	console_check "$R/console.log" >> "$R/results.tsv"
	[ "$rc" = 124 ] && printf 'vm\tFAIL\t\tdid not finish within %s s\n' "$boot_timeout" >> "$R/results.tsv"
	grep -q '^VMTEST: done' "$R/console.log" ||
		printf 'guest\tFAIL\t\tstress-guest.sh did not finish (last line: %s)\n' "$(last_line "$R/console.log")" >> "$R/results.tsv"
	grep -q $'\tFAIL\t' "$R/results.tsv" && status=FAIL
	local ops
	ops=$(cat "$R"/*.log 2> /dev/null | sed -n 's/^kvmng-stress [a-z]*: \([0-9]*\) operations.*/\1/p' | awk '{s += $1} END {print s + 0}')
	echo
	echo "kvmng vm-stress, variant $v ($(cat "$kd/kernelrelease")): $status in $(fmt_secs $((SECONDS - t0))); $ops operations, $splats splats"
	awk -F'\t' '{printf "  %-18s %-4s %7s  %s\n", $1, $2, $3, $4}' "$R/results.tsv"
	echo
	[ $status = PASS ]
}

fail=0
for v in "${variants[@]}"; do
	run_variant "$v" || fail=1
done
exit $fail
