#!/bin/bash
# kvmng vm-fuzz: the differential fuzzer inside the TCG guest, in a chroot
# of the host root (started by ./init; see fuzz.sh).
#
#   fuzz-guest.sh VARIANT RUNDIR KERNELDIR EXECS SECONDS SEED [MAXDIV]
set -u
v=$1 R=$2 K=$3 execs=$4 secs=$5 seed=$6 maxdiv=${7:-20}
S=$(cd "$(dirname "$0")" && pwd)
# guest_start, now, since, record
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$S/lib.sh"
guest_start "$v" "$R" "$K" # rel, res

if [ "$v" = m ]; then
	modprobe -d "$K/modules" -S "$rel" kvm_amd > "$R/modprobe.log" 2>&1
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -c /dev/kvm ] && break; sleep 0.5; done
	[ -c /dev/kvm ] || record modprobe FAIL 0 "$(tail -1 "$R/modprobe.log")"
fi
t0=$(now)
"$S/kvmng-fuzz" --differential --regressions > "$R/regressions.log" 2>&1
rc=$?
record diff-fuzz-regressions "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" \
	"exit $rc: $(tail -1 "$R/regressions.log")"
t0=$(now)
timeout $((secs + 600)) "$S/kvmng-fuzz" --differential --execs "$execs" --seconds "$secs" \
	--seed "$seed" --max-divergences "$maxdiv" --report "$R/report.txt" > "$R/fuzz.log" 2>&1
rc=$?
sum=$(grep -m1 '^kvmng-fuzz --differential: [0-9]' "$R/fuzz.log")
record diff-fuzz "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" "exit $rc: ${sum:-no summary: $(tail -1 "$R/fuzz.log")}"
echo "VMTEST: done"
