#!/bin/bash
# kvmng vm-bench: inside the TCG guest (started by bench.sh's /init, in a
# chroot of the host root). Runs `kvmng bench --instructions` RUNS times,
# writing RUNDIR/runN.json on the writable 9p share.
#
#   bench-guest.sh RUNDIR ITERS ROUNDS OPS RUNS    (OPS: + between the ops)
set -u
R=$1 iters=$2 rounds=$3 ops=${4//+/,} runs=$5
S=$(cd "$(dirname "$0")" && pwd)
# guest_env, keeper_start, keeper_stop
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$S/lib.sh"
guest_env
echo "VMTEST: kernel $(uname -r), $(nproc) CPU, $("$S/kvmng" info 2>&1 | grep -m1 -o 'kvmng_run(~0) answered [A-Z]*')"
# One VM open for the whole run (as vm-test's guest.sh does): KVM flips the
# preempt-notifier static key when the number of VMs goes 0 -> 1 -> 0; with
# this VM alive, vm-create measures creating a VM, not that text patching.
keeper_start
for i in $(seq 1 "$runs"); do
	t0=$(cut -d' ' -f1 /proc/uptime)
	# The shim finds itself next to kvmng (stage/).
	"$S/kvmng" bench --instructions --ops "$ops" --iters "$iters" --rounds "$rounds" \
		--json "$R/run$i.json" > "$R/run$i.txt" 2> "$R/run$i.log"
	rc=$?
	echo "VMTEST: run $i exit $rc in $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.0f", b - a }') guest s"
	head -1 "$R/run$i.txt" | sed 's/^/VMTEST: /'
done
keeper_stop
echo "VMTEST: done"
