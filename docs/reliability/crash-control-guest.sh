#!/bin/bash
# Issue 16's storm controls (docs/reliability.md, section 4): the guest
# script of a TCG guest, first booted by hand on the kernel that crashed
# at 09:50 (debug-541dddd8b6fb4fef, with docs/reliability/if-clear-check.patch),
# then by crash-control-arm.sh on that kernel and on 6.12.117 without the
# series, with the staged initramfs of kernel-patch/vm-test/init:
#
#   qemu-system-x86_64 -accel tcg -cpu max -m 4G -smp N -kernel .../bzImage \
#     -initrd stage/initramfs.gz -nographic -no-reboot -nodefaults -serial stdio \
#     -virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap \
#     -virtfs local,path=$W,mount_tag=out,security_model=none \
#     -append "console=ttyS0 panic=-1 loglevel=5 kvmng_out=$W kvmng_args=SECS,MODE,RUN_CPU,OTHER_CPU"
#
# ($W/stage holds this script as guest.sh, lib.sh, initramfs.gz and a
# release build of kvmng, as lib.sh's stage() leaves them.) Runs KVM_RUN round trips with PIO exits (`kvmng bench
# --ops run-pio --paths ioctl`: plain ioctls, no kvmng call after the
# kernel probe) pinned to guest CPU RUN_CPU, for SECS seconds, while
# OTHER_CPU restores FPU state without pause (MODE storm: race-guest.sh's
# pipe ping-pong, every switch back to user space an XRSTOR) or spins
# without system calls (MODE spin). Stops early if the IF check warns.
S=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=../../kernel-patch/vm-test/lib.sh
. "$S/lib.sh"
guest_env
secs=$1 mode=$2 bench_cpu=${3:-0} storm_cpu=${4:-1}
# On the console, the probe shows that a WARN() (the IF check's) reaches it.
echo "<4>$WARN_PROBE" > /dev/kmsg
echo "VMTEST: kernel $(uname -r), $(nproc) CPUs"
if [ "$mode" = storm ]; then
	taskset -c "$storm_cpu" perl -e 'pipe(my $ar, my $aw) or die; pipe(my $br, my $bw) or die;
		my $b;
		if (fork) { while (1) { syswrite($aw, "x"); sysread($br, $b, 1); } }
		else { while (1) { sysread($ar, $b, 1); syswrite($bw, "y"); } }' &
	storm=$!
	echo "VMTEST: FPU-restore storm on CPU $storm_cpu (pid $storm), KVM_RUN loop on CPU $bench_cpu"
else
	# The same CPU load without system calls: no FPU restores.
	taskset -c "$storm_cpu" perl -e 'while (1) { }' &
	storm=$!
	echo "VMTEST: busy loop without system calls on CPU $storm_cpu (pid $storm), KVM_RUN loop on CPU $bench_cpu"
fi
t0=$(date +%s) n=0
while [ $(($(date +%s) - t0)) -lt "$secs" ]; do
	n=$((n + 1))
	taskset -c "$bench_cpu" "$S/kvmng" bench --ops run-pio --paths ioctl --iters 200000 --rounds 1 \
		--bootstrap 10 --no-census --cpu "$bench_cpu" > "$S/../bench-$n.txt" 2>&1
	echo "VMTEST: batch $n exit $? at $(($(date +%s) - t0)) s"
	if dmesg | grep -q 'with IF clear'; then
		echo "VMTEST: the IF check fired after $(($(date +%s) - t0)) s, batch $n"
		break
	fi
done
kill "$storm"
dmesg | grep -A3 -m3 'with IF clear' | sed 's/^/VMTEST: /'
# The taint flags: W (512) is set by any WARN(), whatever the console shows.
echo "VMTEST: taint $(cat /proc/sys/kernel/tainted)"
echo "VMTEST: done"
