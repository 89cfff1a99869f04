#!/usr/bin/env bash
# trace.sh: where one KVM call's instructions go, kernel function by kernel
# function, on the ioctl path and on the native kvmng path.
#
#   trace.sh OP IOCTL SYSCALL [NATIVE-COND]
#
# OP is a `kvmng bench` operation that makes one call per sample (a step of
# the register sync such as state-get-2, or regs-get, check-extension);
# IOCTL is its ioctl command (state-get-2: KVM_GET_MP_STATE, 0x8004ae98)
# and SYSCALL the native path's system call (kvmng_vcpu_state);
# NATIVE-COND, a gdb condition on the syscall's entry, picks one call of
# several (the argument registers are in the struct pt_regs at $rdi:
# '*(unsigned int *)($rdi + 0x68) == 8', the second argument, for an
# 8-entry batch).
#
# Boots the y kernel of `make kernel` with nokaslr under single-threaded
# TCG with QEMU's gdbstub; the guest (trace-guest.sh) runs OP on both paths
# in a loop; gdb (trace-call.py) breaks at __x64_sys_ioctl for IOCTL and
# at __x64_sys_SYSCALL, steps one warm call of each from entry to return,
# and counts its instructions per function of System.map. Prints the two
# side by side; the traces are in target/vm-trace/OP/. Entering and
# leaving the kernel (the same for both) is outside the count. A
# rep-prefixed instruction counts once per iteration, as under -icount.
#
# Needs: gdb, and what `make vm-bench` needs. Environment: TRACE_KDIR (a
# kernel directory instead of make kernel's y entry), TRACE_PORT (the
# gdbstub's port, 1234), TRACE_SKIP (calls let by first, 20),
# TRACE_TIMEOUT (seconds for the VM, 1200).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prog=vm-trace
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$here/lib.sh"
[ $# -ge 3 ] || die "usage: trace.sh OP IOCTL SYSCALL [NATIVE-COND], e.g. trace.sh state-get-2 0x8004ae98 kvmng_vcpu_state"
op=$1 ioctl=$2 sys=$3 cond=${4:-}
port=${TRACE_PORT:-1234}
need_tools qemu-system-x86_64 cpio gzip
command -v gdb > /dev/null || die "gdb is missing (apt-get install gdb)"
kd=$(kernel_dir TRACE_KDIR y)
[ -f "$kd/.complete" ] || die "no built y kernel ($kd): run make kernel"
W=$repo/target/vm-trace
R=$W/$op
stage "$W" "$here/trace-guest.sh" "cargo build --release -p kvmshim -p kvmng-cli" \
	target/release/kvmng target/release/libkvmshim.so
rm -rf "$R"
mkdir -p "$R"
export VMTEST_QEMU=${VMTEST_QEMU:-$(command -v qemu-system-x86_64)}
echo "==> vm-trace: $op on $(cat "$kd/kernelrelease") from $kd (console: $R/console.log)"
boot_guest "${TRACE_TIMEOUT:-1200}" "$R/console.log" "$W" "$kd" "$R,$op" \
	-accel tcg,thread=single -cpu max -m 2G -smp 1 -gdb "tcp:127.0.0.1:$port" -- nokaslr &
vm=$!
trap 'kill "$vm" 2> /dev/null; pkill -f "$W/stage/initramfs.gz" 2> /dev/null || true' EXIT
for _ in $(seq 1 120); do
	grep -q -a 'VMTEST: kernel' "$R/console.log" 2> /dev/null && break
	sleep 1
done
grep -q -a 'VMTEST: kernel' "$R/console.log" || die "the guest did not start the bench in 120 s (console: $R/console.log)"

# step PATH FUNCTION COND: one call of FUNCTION traced into R/PATH.trace.
step() {
	TRACE_MAP=$kd/System.map TRACE_FUNC=$2 TRACE_COND=$3 TRACE_PORT=$port \
		TRACE_SKIP=${TRACE_SKIP:-20} TRACE_OUT=$R/$1.trace \
		timeout 900 gdb -q -batch -nx -x "$here/trace-call.py" > "$R/$1.gdb.log" 2>&1 ||
		die "gdb did not trace $2 ($R/$1.gdb.log)"
	[ -s "$R/$1.trace.sum" ] || die "gdb did not trace $2 ($R/$1.gdb.log)"
	grep '^trace-call:' "$R/$1.gdb.log" | sed "s/^/  $1: /" || true
}
# The command is the second argument: at 0x68 in the struct pt_regs.
step ioctl __x64_sys_ioctl "*(unsigned int *)(\$rdi + 0x68) == $ioctl"
step native "__x64_sys_$sys" "$cond"

printf '%-44s %8s %8s %8s\n' "function ($op)" ioctl native difference
awk 'FNR == 1 { f++; next } { n[$2] = 1; c[$2, f] = $1 }
	END { for (k in n) { d = c[k, 2] - c[k, 1]
		printf "%d\t%d\t%-44s %8d %8d %+8d\n", d < 0 ? -d : d, c[k, 1], k, c[k, 1], c[k, 2], d } }' \
	"$R/ioctl.trace.sum" "$R/native.trace.sum" | sort -t "$(printf '\t')" -k1,1nr -k2,2nr | cut -f3-
read -r ti _ < "$R/ioctl.trace.sum"
read -r tn _ < "$R/native.trace.sum"
printf '%-44s %8s %8s %+8d\n' total "$ti" "$tn" "$((tn - ti))"
echo "==> vm-trace: $R/{ioctl,native}.trace (one line per instruction), .sum (per function)"
