#!/bin/bash
# kvmng vm-bench: inside the TCG guest (started by bench.sh's /init, in a
# chroot of the host root). Runs `kvmng bench --instructions` RUNS times,
# writing RUNDIR/runN.json on the writable 9p share.
#
#   bench-guest.sh RUNDIR ITERS ROUNDS OPS RUNS KDIR BOOTS
#                                                   (OPS: + between the ops)
#
# Then, BOOTS times (0: not at all), the end-to-end workload: Debian's QEMU
# boots the nested Linux (KDIR/bzImage, nested-initramfs.gz) to its marker
# with 1 and with 2 vCPUs, natively and through the shim (syscall mode),
# each boot measured by `kvmng bench --child-cost` into
# RUNDIR/boot-PATH-smpN-I.json; then once more through the shim with a
# census (KVMNG_STATS puts the shim on its general path, so that boot is
# not the measured one), for the number of KVM calls.
set -u
R=$1 iters=$2 rounds=$3 ops=${4//+/,} runs=$5 K=$6 boots=$7
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

# ---- one real workload, A/B end to end ------------------------------------
# boot_measured PATH SMP NAME [ENV...]: QEMU, with ENV, boots the nested
# Linux; NAME.json is what it cost (--child-cost) with the marker line.
# QEMU ends through isa-debug-exit with status 33, which --child-cost
# reports as a failure after writing its file.
boot_measured() {
	local path=$1 smp=$2 name=$3 marker
	shift 3
	rm -f "$R/$name".*
	"$S/kvmng" bench --child-cost "$R/$name.cost" -- env "$@" timeout 1200 \
		qemu-system-x86_64 -accel kvm -cpu max,-svm -m 256 -smp "$smp" \
		-nodefaults -no-reboot -display none -serial "file:$R/$name.log" \
		-device isa-debug-exit,iobase=0x501,iosize=1 \
		-kernel "$K/bzImage" -initrd "$S/nested-initramfs.gz" \
		-append "console=ttyS0 panic=-1 loglevel=4" < /dev/null > "$R/$name.out" 2>&1
	marker=$(grep -m1 -a kvmng-nested-ok "$R/$name.log" | tr -d '\r')
	jq -n --arg path "$path" --argjson smp "$smp" --arg marker "$marker" --slurpfile cost "$R/$name.cost" \
		'{path: $path, smp: $smp, marker: (if $marker == "" then null else $marker end),
		  kvm_calls: null, translated: null, cost: $cost[0]}' > "$R/$name.json"
	echo "VMTEST: $name: $(jq -r '"exit \(.exit_status), \((.user_ns + .system_ns) / 1e9) G instructions, \(.tsc_ticks / 1e9) G TSC"' "$R/$name.cost"), ${marker:-no marker}"
}
shim_env=(LD_PRELOAD="$S/libkvmshim.so" KVMNG_MODE=syscall)
for i in $(seq 1 "$boots"); do
	for smp in 1 2; do
		boot_measured ioctl "$smp" "boot-ioctl-smp$smp-$i"
		boot_measured shim "$smp" "boot-shim-smp$smp-$i" "${shim_env[@]}"
	done
done
if [ "$boots" -gt 0 ]; then
	for smp in 1 2; do
		n=boot-census-smp$smp
		boot_measured shim "$smp" "$n" "${shim_env[@]}" KVMNG_STATS="$R/$n.stats"
		jq -s '[.[].commands[]] | {calls: (map(.count) | add), translated: (map(.translated) | add)}' \
			"$R/$n.stats" > "$R/$n.census" 2> /dev/null ||
			echo "VMTEST: $n: no census in $R/$n.stats"
	done
fi
keeper_stop
echo "VMTEST: done"
