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
# divisor; 1000), VMBENCH_ROUNDS (10), VMBENCH_OPS (all,state-steps: every
# op and each step of the register sync alone), VMBENCH_RUNS (2),
# VMBENCH_TIMEOUT (seconds for the whole VM; 3000), VMBENCH_KDIR (a kernel
# directory instead of make kernel's y entry), VMBENCH_MEM (2G), VMBENCH_GUEST (a
# script to run in the guest instead of bench-guest.sh, same arguments),
# VMBENCH_BOOTS (0: none): how many times the guest times QEMU booting
# the nested Linux on each path and vCPU count (the JSON's "workload").
# Off by default: under a one-thread -icount outer machine the nested
# Linux hangs in about one boot of five to ten, whatever the guest kernel
# (an unpatched 6.12 too): an interrupt is injected into it with IF clear,
# below kvmng (docs/reliability.md, section 8), and a hung boot holds the
# VM until VMBENCH_TIMEOUT.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=vm-bench
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$here/lib.sh"
out=$repo/target/vm-bench/vm-bench.json
if [ "${1:-}" = --out ]; then
	out=$2
	shift 2
fi
case $out in /*) ;; *) out=$PWD/$out ;; esac
W=$repo/target/vm-bench
iters=${VMBENCH_ITERS:-1000}
rounds=${VMBENCH_ROUNDS:-10}
ops=${VMBENCH_OPS:-all,state-steps}
runs=${VMBENCH_RUNS:-2}
timeout_s=${VMBENCH_TIMEOUT:-3000}
mem=${VMBENCH_MEM:-2G}
boots=${VMBENCH_BOOTS:-0}

need_tools qemu-system-x86_64 jq cpio gzip
# The y kernel of the current series; when it is not built (yet), the newest
# built y kernel, said so in the JSON.
kd=$(kernel_dir VMBENCH_KDIR y)
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

# ---- stage ---------------------------------------------------------------
stage "$W" "${VMBENCH_GUEST:-$here/bench-guest.sh}" "cargo build --release -p kvmshim -p kvmng-cli" \
	target/release/kvmng target/release/libkvmshim.so
initramfs "$W/stage/nested.d" "$here/nested-init" > "$W/stage/nested-initramfs.gz"
rm -rf "$W/run"
mkdir -p "$W/run"

# Debian's QEMU, not vm-test's QEMU 10 (lib.sh): one TCG thread under
# -icount has neither of the problems that made vm-test change, and the
# committed results were measured under it (-cpu max differs by version).
export VMTEST_QEMU=${VMTEST_QEMU:-$(command -v qemu-system-x86_64 || echo qemu-system-x86_64)}
echo "==> vm-bench: $rel from $kd, $runs runs of kvmng bench --instructions (console: $W/run/console.log)"
t0=$SECONDS
rc=0
boot_guest "$timeout_s" "$W/run/console.log" "$W" "$kd" "$W/run,$iters,$rounds,${ops//,/+},$runs,$kd,$boots" \
	-accel tcg,thread=single -icount shift=0,sleep=off -cpu max -m "$mem" -smp 1 || rc=$?
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
# The workload's boots, the shim's with the census boot's call counts.
wl=$W/run/workload.json
echo '[]' > "$wl"
if [ "$boots" -gt 0 ]; then
	bfiles=("$W"/run/boot-ioctl-smp*-*.json "$W"/run/boot-shim-smp*-*.json)
	[ -s "${bfiles[0]}" ] || die "the guest wrote no boot-*.json; the console ends with: $(tail -5 "$W/run/console.log")"
	jq -s '.' "${bfiles[@]}" > "$wl"
	for smp in 1 2; do
		c=$W/run/boot-census-smp$smp.census
		if [ -s "$c" ]; then
			jq --argjson smp "$smp" --slurpfile c "$c" \
				'map(if .path == "shim" and .smp == $smp then .kvm_calls = $c[0].calls | .translated = $c[0].translated else . end)' \
				"$wl" > "$wl.tmp" && mv "$wl.tmp" "$wl"
		fi
	done
	if jq -e 'map(select(.marker == null)) | length > 0' "$wl" > /dev/null; then
		echo "vm-bench: warning: a nested boot printed no marker (logs: $W/run/boot-*.log)" >&2
	fi
fi
guest_cmd=$(jq -r .command "${files[0]}")
mkdir -p "$(dirname "$out")"
# The QEMU command as it ran, with the repository's paths made relative.
qcmd=$(printf '%s ' "${qemu_cmd[@]}" | sed "s|$repo/||g; s| *$||")
jq -s --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg kernel "$rel ($(basename "$kd"), KVM built in; $knote)" \
	--arg kdir "$kd" --arg qemu "$(qemu-system-x86_64 --version | head -1)" --arg qcmd "$qcmd" \
	--arg gcmd "$guest_cmd" --argjson secs "$secs" --slurpfile wl "$wl" \
	'{date: $date, kernel: $kernel, kernel_dir: $kdir, qemu: $qemu, qemu_command: $qcmd,
	  guest_command: $gcmd, seconds: $secs, runs: ., workload: $wl[0]}' "${files[@]}" > "$out.tmp"
mv "$out.tmp" "$out"
echo "==> vm-bench: $out in $((secs / 60))m$((secs % 60))s"
"$repo/target/release/kvmng" bench --show-vm-bench "$out"
