#!/usr/bin/env bash
# vm-test.sh: boot the kvmng kernels built by `make kernel` under QEMU TCG
# and run the tests in them (`make vm-test`, `make vm-test-full`).
#
#   vm-test.sh [--full] [VARIANT...]      default variants: y m
#
# Each variant boots with QEMU 10.0 (lib.sh) -accel tcg -cpu max (nested
# SVM, so kvm-amd works in the guest) -m 4G -smp 3 (the tests on CPUs 1-2), a busybox initramfs
# (./init), the host root read-only over 9p and target/vm-test read-write
# over its own path. In a chroot of the host root, guest.sh runs: (m: probe
# ENOSYS, modprobe) the probe (native), kvmng_test, kvmng_memory_map_test
# and kvmng_ioregion_test, the C conformance suite natively (every check
# must pass), kvmng-fuzz --differential (the syscalls against the
# emulation: its decided cases), the legacy KVM
# selftests natively and through libkvmshim.so in
# KVMNG_MODE=syscall (kvmng-compat; selftests.list, or all with --full),
# Debian's QEMU under the shim booting a nested Linux to "kvmng-nested-ok",
# the shim's census of it, libkrun (compat-tests/kvmng-krun) booting an SMP guest
# on 2 and 4 vCPUs and this kernel on 2, natively and under the shim (m:
# rmmod, probe ENOSYS). The table per variant is
# printed; results in target/vm-test/V/ (results.tsv, results.json, logs,
# console.log). Exit status 1 if any step failed, or the guest kernel
# printed an oops, BUG or WARNING.
#
# Needs: the kernels (make kernel), target/release/{kvmng,kvmng-compat,
# libkvmshim.so}, build/conformance/conformance and libkrun's launcher
# kvmng-krun (make krun; the Makefile target builds them all), busybox (busybox-static), qemu-system-x86, jq.
# Environment: VMTEST_MEM (4G), VMTEST_SMP (3), VMTEST_TIMEOUT (whole boot,
# seconds), VMTEST_ST_TIMEOUT (per selftest run, seconds), VMTEST_LIST (a
# selftest list instead of selftests.list), VMTEST_KDIR_y, VMTEST_KDIR_m
# (kernel directories instead of make kernel's cache entries), VMTEST_KRUN
# (kvmng-krun elsewhere than make krun's cache), VMTEST_ACCEL (QEMU's -accel,
# default tcg), VMTEST_QEMU (another outer QEMU), VMTEST_EXTRA_PARAMS (more
# kernel parameters for the guest), VMTEST_GUEST
# (a script to run in the guest instead of guest.sh, same arguments: for
# debugging).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=vm-test
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$here/lib.sh"
full=0
if [ "${1:-}" = --full ]; then
	full=1
	shift
fi
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(y m)
W=${VMTEST_WORK:-$repo/target/vm-test}
mem=${VMTEST_MEM:-4G}
# 3 vCPUs: the tests run on CPUs 1-2, CPU 0 never enters SVM (lib.sh,
# guest_start: a QEMU 10.0 multi-threaded TCG race on CPU 0's state).
smp=${VMTEST_SMP:-3}
# Multi-threaded TCG (one host thread per vCPU, QEMU's default for -smp 2).
# It now and then runs a stale translation of code that the guest kernel
# has just patched with text_poke_bp(), and the kernel dies of "Oops:
# int3"; so the kernels are built without jump labels
# (config/common.config), the only runtime text patching there was: KVM
# flips the scheduler's preempt-notifier key whenever the first VM is
# created and the last destroyed. guest.sh's text-poke step (300 VMs)
# killed 14 of 18 boots with jump labels. Single-threaded TCG avoids the
# race too, but there the nested guests of the QEMU and libkrun steps stop
# getting interrupts (docs/reliability.md, "The TCG int3 race").
accel=${VMTEST_ACCEL:-tcg}
if [ $full = 1 ]; then
	boot_timeout=${VMTEST_TIMEOUT:-14400}
	st_timeout=${VMTEST_ST_TIMEOUT:-1200}
	list=all
else
	boot_timeout=${VMTEST_TIMEOUT:-1500}
	st_timeout=${VMTEST_ST_TIMEOUT:-300}
	list=$W/stage/selftests.list
fi
list_src=${VMTEST_LIST:-$here/selftests.list}

need_tools qemu-system-x86_64 jq cpio gzip
# The kernel of a variant (VMTEST_KDIR_y / VMTEST_KDIR_m: another directory
# of the same layout).
kdir() { kernel_dir "VMTEST_KDIR_$1" "$1"; }
ydir=$(kdir y)
need_kernels VMTEST_KDIR_ "make kernel" y "${variants[@]}"

# ---- stage -----------------------------------------------------------------
stage "$W" "${VMTEST_GUEST:-$here/guest.sh}" \
	"cargo build --release -p kvmshim -p kvmng-cli -p kvmng-compat -p kvmng-fuzz; make conformance" \
	target/release/kvmng target/release/kvmng-compat target/release/libkvmshim.so build/conformance/conformance \
	target/release/kvmng-fuzz kernel-patch/vm-test/nested-watch.sh
krun=${VMTEST_KRUN:-${KVMNG_CACHE:-$HOME/.cache/kvmng}/krun-target/release/kvmng-krun}
[ -x "$krun" ] || die "$krun is missing: run make krun (libkrun's launcher, compat-tests/kvmng-krun)"
cp "$krun" "$W/stage/kvmng-krun"
# libkrun boots an ELF kernel: each variant's vmlinux, out of its bzImage.
xv=${KVMNG_LINUX_SRC:-${KVMNG_CACHE:-$HOME/.cache/kvmng}/linux-source-6.12}/scripts/extract-vmlinux
[ -x "$xv" ] || die "$xv is missing: run make linux-source"
for v in "${variants[@]}"; do
	"$xv" "$(kdir "$v")/bzImage" > "$W/stage/vmlinux-$v" || die "cannot extract vmlinux from $(kdir "$v")/bzImage"
done
cp "$list_src" "$W/stage/selftests.list"
cp "$repo/compat-tests/selftests/notes.list" "$W/stage/" 2> /dev/null || : > "$W/stage/notes.list"
initramfs "$W/stage/nested.d" "$here/nested-init" > "$W/stage/nested-initramfs.gz"

# ---- one variant -----------------------------------------------------------
table() { # results.tsv
	awk -F'\t' '
		{ n++; name[n] = $1; st[n] = $2; s[n] = $3; d[n] = $4; if (length($1) > w) w = length($1) }
		END {
			printf "  %-*s  %-4s  %7s  %s\n", w, "step", "", "seconds", "detail"
			for (i = 1; i <= n; i++) printf "  %-*s  %-4s  %7s  %s\n", w, name[i], st[i], s[i], d[i]
		}' "$1"
}

run_variant() {
	local v=$1 kd R t0=$SECONDS rc=0
	kd=$(kdir "$v")
	R=$W/$v
	rm -rf "$R"
	mkdir -p "$R"
	echo "==> vm-test $v: $(cat "$kd/kernelrelease") from $kd (console: $R/console.log)"
	boot_guest "$boot_timeout" "$R/console.log" "$W" "$kd" "$v,$R,$kd,$ydir,$list,$st_timeout" \
		-accel "$accel" -cpu max -m "$mem" -smp "$smp" || rc=$?
	local secs=$((SECONDS - t0)) status=PASS
	[ -f "$R/results.tsv" ] || : > "$R/results.tsv"
	# The guest kernel's own complaints (oops, panic, BUG, WARNING) fail the
	# variant, whatever the steps said.
	local oops
	oops=$(guest_oops "$R/console.log")
	if [ -n "$oops" ]; then
		local rip
		rip=$(grep -a -m1 -E '^\[ *[0-9.]+\] RIP: ' "$R/console.log" | sed 's/^\[[^]]*\] //' | cut -c1-80)
		printf 'guest-kernel\tFAIL\t\t%s\n' "${oops#*] }${rip:+ at $rip} (console.log)" >> "$R/results.tsv"
	else
		printf 'guest-kernel\tPASS\t\tno oops, BUG or WARNING on the console\n' >> "$R/results.tsv"
	fi
	console_check "$R/console.log" >> "$R/results.tsv"
	if [ "$rc" = 124 ]; then
		echo "  !! the VM did not finish within $boot_timeout s" >&2
		printf 'vm\tFAIL\t%s\tdid not finish within %s s\n' "$secs" "$boot_timeout" >> "$R/results.tsv"
	fi
	if ! grep -q '^VMTEST: done' "$R/console.log"; then
		echo "  !! guest.sh did not finish; last console lines:" >&2
		tail -15 "$R/console.log" | sed 's/^/  | /' >&2
		printf 'guest.sh\tFAIL\t\tdid not finish (last console line: %s)\n' "$(last_line "$R/console.log")" >> "$R/results.tsv"
	fi
	if grep -q $'\tFAIL\t' "$R/results.tsv"; then status=FAIL; fi
	echo
	echo "kvmng vm-test, variant $v ($(cat "$kd/kernelrelease"), KVM $([ "$v" = y ] && echo built in || echo as modules)): $status in $(fmt_secs $secs)"
	table "$R/results.tsv"
	jq -Rn --arg v "$v" --arg k "$kd" --arg status "$status" --argjson secs "$secs" \
		--arg rel "$(cat "$kd/kernelrelease")" '
		{variant: $v, kernel: $k, kernelrelease: $rel, status: $status, seconds: $secs,
		 steps: [inputs | split("\t") | {name: .[0], status: .[1], seconds: (.[2] | tonumber? // null), detail: .[3]}]}' \
		< "$R/results.tsv" > "$R/results.json" 2> /dev/null || true
	[ -f "$R/selftests.json" ] && echo "  selftests: $R/selftests.md"
	[ -f "$R/qemu-stats.txt" ] && echo "  QEMU census: $R/qemu-stats.txt"
	echo
	[ $status = PASS ]
}

t_all=$SECONDS
fail=0
for v in "${variants[@]}"; do
	run_variant "$v" || fail=1
done
echo "==> vm-test $([ $fail = 0 ] && echo PASS || echo FAIL) (${variants[*]}) in $(fmt_secs $((SECONDS - t_all))); results in $W/*/results.json"
exit $fail
