#!/usr/bin/env bash
# bench.sh: instruction counts of the ioctl and kvmng paths on the patched
# kernel (`make vm-bench`).
#
#   bench.sh [--out FILE]        default FILE: target/vm-bench/vm-bench.json
#
# Boots the y kernel of `make kernel` (when the current series is not built,
# the newest built y kernel, with a warning that the JSON keeps) under QEMU
# TCG, single-threaded, one CPU, with -icount shift=0,sleep=off: the guest's
# clock and TSC advance by one per guest instruction, whatever the host's
# load (sleep=off: an idle guest jumps to its next timer instead of
# following the host's clock), so `kvmng bench --instructions` inside (which
# reads the TSC around every sample) counts instructions, deterministically. The guest (bench-guest.sh, in a chroot of the host
# root shared read-only over 9p) runs the bench twice; this script puts
# the two reports, with the kernel, the QEMU command and the date, into
# FILE (vm-bench.json: docs/bench.md's instruction table is made from it by
# `make bench`) and prints the table.
#
# Needs: the y kernel (make kernel), target/release/{kvmng,libkvmshim.so},
# busybox (busybox-static), qemu-system-x86, jq, cpio, gzip.
# Environment: VMBENCH_ITERS (samples per path and op, before each op's
# divisor; 1000), VMBENCH_ROUNDS (10), VMBENCH_OPS (all), VMBENCH_RUNS (2),
# VMBENCH_TIMEOUT (seconds for the whole VM; 3000), VMBENCH_KDIR (a kernel
# directory instead of make kernel's y entry), VMBENCH_MEM (2G), VMBENCH_GUEST (a
# script to run in the guest instead of bench-guest.sh, same arguments).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$repo/target/vm-bench/vm-bench.json
if [ "${1:-}" = --out ]; then
	out=$2
	shift 2
fi
case $out in /*) ;; *) out=$PWD/$out ;; esac
W=$repo/target/vm-bench
iters=${VMBENCH_ITERS:-1000}
rounds=${VMBENCH_ROUNDS:-10}
ops=${VMBENCH_OPS:-all}
runs=${VMBENCH_RUNS:-2}
timeout_s=${VMBENCH_TIMEOUT:-3000}
mem=${VMBENCH_MEM:-2G}

die() { echo "vm-bench: error: $*" >&2; exit 2; }
for c in qemu-system-x86_64 busybox jq cpio gzip; do
	command -v $c > /dev/null || die "$c is missing (apt-get install qemu-system-x86 busybox-static jq cpio)"
done
busybox=$(command -v busybox)
! ldd "$busybox" > /dev/null 2>&1 || die "$busybox is not statically linked (apt-get install busybox-static)"
# The y kernel of the current series; when it is not built (yet), the newest
# built y kernel, said so in the JSON.
kd=${VMBENCH_KDIR:-$("$repo/kernel-patch/scripts/kernel.sh" --dir y)}
knote="the current series"
if [ ! -f "$kd/.complete" ]; then
	[ -n "${VMBENCH_KDIR:-}" ] && die "$kd is not a built kernel directory"
	want=$kd
	kd=$(ls -dt "$(dirname "$want")"/y-*/.complete 2> /dev/null | head -1 | xargs -r dirname)
	[ -n "$kd" ] || die "no built y kernel ($want): run make kernel"
	knote="NOT the current series: $(basename "$want") is not built, $(basename "$kd") (built $(jq -r .built "$kd/build.json" 2> /dev/null)) is the newest built"
	echo "vm-bench: warning: $knote" >&2
fi
[ -n "${VMBENCH_KDIR:-}" ] && knote="given by VMBENCH_KDIR"
rel=$(cat "$kd/kernelrelease")

# ---- stage: copies, so that concurrent builds cannot change them mid-run ---
rm -rf "$W/stage" "$W/run"
mkdir -p "$W/stage" "$W/run"
for f in target/release/kvmng target/release/libkvmshim.so; do
	[ -f "$repo/$f" ] || die "$f is missing (cargo build --release -p kvmshim -p kvmng-cli)"
	cp "$repo/$f" "$W/stage/"
done
cp "${VMBENCH_GUEST:-$here/bench-guest.sh}" "$W/stage/guest.sh"
chmod +x "$W/stage/guest.sh"

# /init of the guest: busybox mounts the host root read-only (9p tag host)
# and $W read-write (tag out) at its own path, then runs guest.sh in a
# chroot of the host root (as vm-test's init does).
d=$W/stage/init.d
rm -rf "$d"
mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/host" "$d/tmp"
cp "$busybox" "$d/bin/busybox"
cat > "$d/init" << 'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
arg() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" /proc/cmdline; }
out=$(arg kvmng_out)
args=$(arg kvmng_args | tr ',' ' ')
echo "VMBENCH: booted $(uname -r) in $(cut -d' ' -f1 /proc/uptime) s"
opts=trans=virtio,version=9p2000.L,msize=262144
mount -t 9p -o "$opts,ro" host /host || { echo "VMBENCH: cannot mount the host root"; poweroff -f; }
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mount -t tmpfs tmp /host/tmp
[ -d "/host$out" ] || mkdir -p "/host$out"   # a share under /tmp
mount -t 9p -o "$opts" out "/host$out" || { echo "VMBENCH: cannot mount $out"; poweroff -f; }
# shellcheck disable=SC2086
chroot /host /bin/bash "$out/stage/guest.sh" $args
echo "VMBENCH: guest.sh exit status $?"
sync
umount "/host$out"
poweroff -f
INIT
chmod +x "$d/init"
(cd "$d" && find . | cpio -o -H newc 2> /dev/null | gzip -1) > "$W/stage/initramfs.gz"
rm -rf "$d"

qemu=(qemu-system-x86_64 -accel tcg,thread=single -icount shift=0,sleep=off -cpu max
	-m "$mem" -smp 1 -kernel "$kd/bzImage" -initrd "$W/stage/initramfs.gz"
	-nographic -no-reboot -nodefaults -serial stdio
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap
	-virtfs "local,path=$W,mount_tag=out,security_model=none"
	-append "console=ttyS0 panic=-1 loglevel=4 kvmng_out=$W kvmng_args=$W/run,$iters,$rounds,${ops//,/+},$runs")
echo "==> vm-bench: $rel from $kd, $runs runs of kvmng bench --instructions (console: $W/run/console.log)"
t0=$SECONDS
set +e
timeout "$timeout_s" "${qemu[@]}" < /dev/null 2>&1 | sed -u 's/\r//g' | tee "$W/run/console.log" |
	sed -u -n 's/^VMBENCH: /  | /p'
rc=${PIPESTATUS[0]}
set -e
secs=$((SECONDS - t0))
[ "$rc" = 124 ] && die "the VM did not finish within $timeout_s s (console: $W/run/console.log)"
files=()
for i in $(seq 1 "$runs"); do
	f=$W/run/run$i.json
	[ -s "$f" ] || die "run $i wrote no $f; the console ends with: $(tail -5 "$W/run/console.log")"
	files+=("$f")
done
if grep -a -q -E '^\[ *[0-9]+\.[0-9]+\] (Oops|Kernel panic|BUG:|WARNING:)' "$W/run/console.log"; then
	echo "vm-bench: warning: the guest kernel complained (see $W/run/console.log)" >&2
fi
guest_cmd=$(jq -r .command "${files[0]}")
mkdir -p "$(dirname "$out")"
# The QEMU command as it ran, with the repository's paths made relative.
qcmd=$(printf '%s ' "${qemu[@]}" | sed "s|$repo/||g; s| *$||")
jq -s --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg kernel "$rel ($(basename "$kd"), KVM built in; $knote)" \
	--arg kdir "$kd" --arg qemu "$(qemu-system-x86_64 --version | head -1)" --arg qcmd "$qcmd" \
	--arg gcmd "$guest_cmd" --argjson secs "$secs" \
	'{date: $date, kernel: $kernel, kernel_dir: $kdir, qemu: $qemu, qemu_command: $qcmd,
	  guest_command: $gcmd, seconds: $secs, runs: .}' "${files[@]}" > "$out.tmp"
mv "$out.tmp" "$out"
echo "==> vm-bench: $out in $((secs / 60))m$((secs % 60))s"
"$repo/target/release/kvmng" bench --show-vm-bench "$out"
