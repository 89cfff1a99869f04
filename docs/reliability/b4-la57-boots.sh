#!/bin/bash
# b4-la57-boots.sh OUTDIR N [KERNEL-PARAMETER...]: arm B4's KASAN report at
# boot (docs/reliability.md, section 4), sought. N boots of the kernel in
# KDIR (bzImage) under the outer QEMU named by QEMU (-accel tcg -cpu max
# -m 4G -smp 2, as the arms), two at a time, with no root file system:
# each boot ends at its VFS panic (past identify_boot_cpu, where the
# report came; panic=-1 and -no-reboot make QEMU exit) or after 60 s. KERNEL-PARAMETERs are added (no5lvl: 4-level
# paging). One line per boot: its number, KASAN (a wild-memory-access
# report) or clean, whether the VFS panic was reached, its command line.
#
#   KDIR=<no series> QEMU=<fixed QEMU wrapper> b4-la57-boots.sh la57 40
#   KDIR=<no series> QEMU=<fixed QEMU wrapper> b4-la57-boots.sh no5lvl 40 no5lvl
set -u
out=$1 n=$2
shift 2
kd=${KDIR:?set KDIR to the kernel directory (bzImage)}
q=${QEMU:?set QEMU to the outer QEMU (a wrapper that adds its -L options)}
mkdir -p "$out"
boot() {
	local i=$1 log=$out/boot-$1.log pid t=0
	shift
	"$q" -accel tcg -cpu max -m 4G -smp 2 -nographic -no-reboot -nodefaults \
		-serial stdio -kernel "$kd/bzImage" \
		-append "console=ttyS0 panic=-1 loglevel=5 nokaslr $*" < /dev/null > "$log" 2>&1 &
	pid=$!
	while [ $t -lt 600 ] && kill -0 $pid 2> /dev/null && ! grep -q 'Kernel panic - not syncing' "$log"; do
		sleep 0.1
		t=$((t + 1))
	done
	kill $pid 2> /dev/null
	wait $pid 2> /dev/null
	printf '%s\t%s\t%s\t%s\n' "$i" \
		"$(grep -q 'wild-memory-access' "$log" && echo KASAN || echo clean)" \
		"$(grep -q 'Kernel panic - not syncing: VFS' "$log" && echo reached || echo NOT-REACHED)" \
		"$(grep -m1 -o 'Command line:.*' "$log" | cut -c1-90)"
}
i=0
while [ $i -lt "$n" ]; do
	boot $((i + 1)) "$@" &
	[ $((i + 1)) -lt "$n" ] && boot $((i + 2)) "$@" &
	wait
	i=$((i + 2))
done
