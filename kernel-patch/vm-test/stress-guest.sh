#!/bin/bash
# kvmng vm-stress: the stress run inside the TCG guest, in a chroot of the
# host root (started by ./init; see stress.sh). Writes into RUNDIR on the
# writable 9p share: results.tsv (step, PASS/FAIL, seconds, detail), one
# STEP.log per step, kmemleak.txt; announces each step on the console as
# "VMTEST: ...".
#
#   stress-guest.sh VARIANT RUNDIR KERNELDIR SECONDS [SELFTESTS]
# VARIANT debug (KVM built in, KASAN/lockdep/kmemleak) or m (KVM as
# modules: kvm.ko unloaded and reloaded while calls are in flight).
# SELFTESTS: the patched tree's built KVM selftests (debug only).
set -u
v=$1 R=$2 K=$3 secs=$4 st=${5:-}
S=$(cd "$(dirname "$0")" && pwd)
# guest_start, now, since, record, keeper_start, keeper_stop, kvmng_selftest
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$S/lib.sh"
guest_start "$v" "$R" "$K" # rel, res

# stress NAME ARGS...: one kvmng-stress run; its last line is the detail.
stress() {
	local name=$1 t0 rc
	shift
	t0=$(now)
	timeout $((secs * 3 + 300)) "$@" > "$R/$name.log" 2>&1
	rc=$?
	grep '^kvmng-stress: ' "$R/$name.log" | grep -v '^kvmng-stress: soak' | sed 's/^/VMTEST: ... /'
	record "$name" "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" \
		"exit $rc: $(grep -E '^kvmng-stress (ioctl|syscall):' "$R/$name.log" | tail -1)"
}

mount -t debugfs debugfs /sys/kernel/debug 2> /dev/null

if [ "$v" = m ]; then
	load="modprobe -d $K/modules -S $rel kvm_amd"
	$load > "$R/modprobe.log" 2>&1
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -c /dev/kvm ] && break; sleep 0.5; done
	[ -c /dev/kvm ] || record modprobe FAIL 0 "$(tail -1 "$R/modprobe.log")"
	stress syscall-native "$S/kvmng-stress" syscall --seconds "$secs"
	stress rmmod-in-flight "$S/kvmng-stress" syscall --seconds "$secs" --rmmod "$load"
	echo "VMTEST: done"
	exit 0
fi

# debug: leaks counted from here on (boot-time reports are not ours).
if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan > /sys/kernel/debug/kmemleak
	echo clear > /sys/kernel/debug/kmemleak
else
	record kmemleak FAIL 0 "/sys/kernel/debug/kmemleak is missing"
fi
# One VM alive for the whole run, as guest.sh does: the preempt-notifier
# static key then flips once, not at every VM (a multi-threaded TCG bug).
keeper_start
stress syscall-native "$S/kvmng-stress" syscall --seconds "$secs"
stress ioctl-shim env LD_PRELOAD="$S/libkvmshim.so" "$S/kvmng-stress" ioctl --seconds "$secs"
# The permission model natively (t_security.c of the conformance suite).
t0=$(now)
"$S/conformance" same_uid other_uid an_unbound read_only a_user > "$R/security.log" 2>&1
rc=$?
record security "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" \
	"$(grep -m1 '^conformance:' "$R/security.log") (t_security.c, native)"
# The kvmng selftests under the bug detectors: the review's findings
# (LSM hooks, the socket cycle, memory-map atomicity, ioregion state under
# vcpu->mutex, rollback) run here with KASAN, lockdep and kmemleak on, and
# their VMs' memory is in the leak count below.
for t in kvmng_test kvmng_memory_map_test kvmng_ioregion_test; do
	kvmng_selftest "$st" "$t" 900
done
keeper_stop
# Every VM is gone: what is still allocated and unreferenced leaked.
if [ -w /sys/kernel/debug/kmemleak ]; then
	t0=$(now)
	sleep 5
	echo scan > /sys/kernel/debug/kmemleak
	sleep 5
	echo scan > /sys/kernel/debug/kmemleak
	cat /sys/kernel/debug/kmemleak > "$R/kmemleak.txt"
	n=$(grep -c '^unreferenced object' "$R/kmemleak.txt")
	nk=$(awk '/^unreferenced object/ { if (obj && kvm) k++; obj = 1; kvm = 0 } /kvm/ { kvm = 1 } END { if (obj && kvm) k++; print k + 0 }' "$R/kmemleak.txt")
	record kmemleak "$([ "$nk" = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" \
		"$n unreferenced objects, $nk with kvm in their backtrace (kmemleak.txt)"
fi
# Lockdep switches itself off after its first report: it must still be on.
if [ -r /proc/lockdep_stats ]; then
	cp /proc/lockdep_stats "$R/lockdep_stats.txt"
	dl=$(awk '/debug_locks:/ {print $2}' "$R/lockdep_stats.txt")
	record lockdep "$([ "$dl" = 1 ] && echo PASS || echo FAIL)" 0 \
		"debug_locks $dl, $(awk '/lock-classes:/ {print $2}' "$R/lockdep_stats.txt") lock classes, $(awk '/^ *direct dependencies:/ {print $3}' "$R/lockdep_stats.txt") direct dependencies"
fi
# Any WARN() since boot taints the kernel with W (512), and DEBUG_LIST
# reports a corrupted list with one and skips the operation: the flag
# catches them whatever the console showed. The whole ring buffer is kept.
t=$(cat /proc/sys/kernel/tainted)
record taint "$([ $((t & 512)) = 0 ] && echo PASS || echo FAIL)" 0 "tainted $t (512: a WARN fired)"
dmesg > "$R/dmesg.txt"
echo "VMTEST: done"
