#!/bin/bash
# kvmng vm-trace: inside the TCG guest (started by trace.sh's /init, in a
# chroot of the host root). Runs one operation of `kvmng bench` on the
# ioctl and native paths over and over, until trace.sh has stepped one
# call of each through the outer QEMU's gdbstub and powers the guest off.
#
#   trace-guest.sh RUNDIR OP
set -u
R=$1 op=$2
S=$(cd "$(dirname "$0")" && pwd)
# guest_env, keeper_start
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$S/lib.sh"
guest_env
# One VM open throughout, as bench-guest.sh keeps (the preempt-notifier
# static key flips once, not around every VM the bench creates).
keeper_start
echo "VMTEST: kernel $(uname -r), running $op on the ioctl and native paths"
while :; do
	"$S/kvmng" bench --ops "$op" --paths native --iters 200000 --rounds 1 \
		--bootstrap 10 --no-census --cpu none > "$R/bench.txt" 2>&1 ||
		{ echo "VMTEST: kvmng bench failed: $(tail -1 "$R/bench.txt")"; break; }
done
