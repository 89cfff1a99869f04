#!/bin/bash
# One arm of issue 16's storm controls (docs/reliability.md, section 4),
# as run for the arms without the series and under the fixed QEMU:
#
#   REPO=<a checkout with target/release/kvmng built> \
#     crash-control-arm.sh NAME KDIR QEMU SMP GUEST-ARGS [QEMU-OPTION...]
#
# e.g. crash-control-arm.sh B1 /path/to/kernel qemu-fixed 2 240,storm,0,1 \
#        -L .../qemu-backports/usr/share/qemu -L .../qemu-backports/usr/share/seabios
#
# Boots KDIR/bzImage (with KDIR/kernelrelease) under QEMU on
# multi-threaded TCG (-cpu max, 4 GiB, SMP CPUs) through the harness's own
# lib.sh (stage, boot_guest: loglevel 5), with crash-control-guest.sh as
# the guest script and GUEST-ARGS as its arguments. Results go to
# $OUT/NAME (default ./arms/NAME): console.log, bench-N.txt per batch.
# A watchdog reads both CPUs' registers and the local APIC through the
# monitor (hang-regs.txt) and stops the guest after 150 s in which
# neither the console nor a batch file changed (a batch takes 20-45 s).
set -uo pipefail
name=$1 kd=$2 q=$3 smp=$4 args=$5
shift 5
docs=$(cd "$(dirname "$0")" && pwd)
: "${REPO:?set REPO to a checkout with target/release/kvmng built}"
prog=arm here=$docs/../../kernel-patch/vm-test repo=$REPO
# shellcheck source=../../kernel-patch/vm-test/lib.sh
. "$here/lib.sh"
need_tools cpio
W=$(realpath -m "${OUT:-arms}/$name")
stage "$W" "$docs/crash-control-guest.sh" "cargo build --release" target/release/kvmng
secs=${args%%,*}
export VMTEST_QEMU=$q
t0=$(date +%s)
echo "== $name: $("$q" --version | head -1), $kd, smp $smp, args $args, start $(date +%T)"
(
	last="" t=$(date +%s)
	while sleep 10; do
		cur=$(stat -c %s:%Y "$W/console.log" "$W"/bench-*.txt 2> /dev/null | md5sum)
		if [ "$cur" != "$last" ]; then last=$cur t=$(date +%s); continue; fi
		if [ $(($(date +%s) - t)) -ge 150 ]; then
			echo "== $name: no progress for 150 s at $(date +%T): registers, then stop"
			hmp "$W/mon" "info registers -a" "info lapic" > "$W/hang-regs.txt" 2>&1
			hmp "$W/mon" quit > /dev/null 2>&1
			break
		fi
	done
) &
wd=$!
boot_guest $((secs + 300)) "$W/console.log" "$W" "$kd" "$args" -accel tcg -cpu max -m 4G -smp "$smp" \
	-monitor "unix:$W/mon,server=on,wait=off" "$@"
rc=$?
kill $wd 2> /dev/null
echo "== $name: qemu rc $rc after $(($(date +%s) - t0)) s"
grep -a -m3 -E "with IF clear|Oops|BUG:|Kernel panic|stack-protector|WARNING:|rcu:.*stall|soft lockup" "$W/console.log" | cut -c1-200
