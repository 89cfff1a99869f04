#!/bin/bash
# The outer QEMU's cpu_clear_ignne() race on demand (docs/reliability.md,
# section 7): a guest script for fuzz.sh (VMFUZZ_GUEST) that runs the
# differential fuzzer on one guest CPU while another guest CPU restores
# FPU state as fast as it can: a pipe ping-pong between two processes,
# each switch back to user space an XRSTOR, each of which makes QEMU
# rewrite the first CPU's hflags2 without a lock. With 2 guest CPUs
# (VMFUZZ_SMP=2) the fuzzer runs on CPU 0, the CPU whose SVM state those
# writes can lose; with 3 it runs on CPU 1 and the storm on CPU 2, with
# CPU 0 idle, as every test of the harness runs (lib.sh, guest_start).
#
#   VMFUZZ_GUEST=kernel-patch/vm-test/race-guest.sh VMFUZZ_SMP=2 \
#       VMFUZZ_SECONDS=600 VMFUZZ_SEED=424242 kernel-patch/vm-test/fuzz.sh y
#
# Arguments (from fuzz.sh): VARIANT RUNDIR KERNELDIR EXECS SECONDS SEED [MAXDIV]
set -u
v=$1 R=$2 K=$3 execs=$4 secs=$5 seed=$6 maxdiv=${7:-20}
S=$(cd "$(dirname "$0")" && pwd)
# guest_start, now, since, record, note
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$S/lib.sh"
guest_start "$v" "$R" "$K" # rel, res
if [ "$(nproc --all)" = 2 ]; then fuzz_cpu=0 storm_cpu=1; else fuzz_cpu=1 storm_cpu=2; fi
note "fuzzer on CPU $fuzz_cpu, FPU-restore storm on CPU $storm_cpu"
# The ping-pong's child dies of SIGPIPE once its parent is killed.
taskset -c "$storm_cpu" perl -e 'pipe(my $ar, my $aw) or die; pipe(my $br, my $bw) or die;
	my $b;
	if (fork) { while (1) { syswrite($aw, "x"); sysread($br, $b, 1); } }
	else { while (1) { sysread($ar, $b, 1); syswrite($bw, "y"); } }' &
storm=$!
t0=$(now)
taskset -c "$fuzz_cpu" timeout $((secs + 600)) "$S/kvmng-fuzz" --differential --execs "$execs" \
	--seconds "$secs" --seed "$seed" --max-divergences "$maxdiv" --report "$R/report.txt" > "$R/fuzz.log" 2>&1
rc=$?
kill "$storm"
sum=$(grep -m1 '^kvmng-fuzz --differential: [0-9]' "$R/fuzz.log")
record diff-fuzz "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" "exit $rc: ${sum:-no summary: $(tail -1 "$R/fuzz.log")}"
echo "VMTEST: done"
