#!/bin/sh
# Boot a built kernel under QEMU TCG (-cpu max exposes SVM, so kvm-amd
# works inside), share the host root read-only over 9p, and run one
# command in a chroot of it.
#
#   boot-test.sh <bzImage> <absolute path of a program on the host> [args]
#
# Prints the guest console; the line "KVMNG-GUEST: exit status N" gives
# the program's exit status.
#
# The guest has 3 CPUs and the program runs on CPUs 1 and 2 only: under
# multi-threaded TCG, an FPU state restore on any vCPU rewrites the first
# CPU's SVM flags without a lock (QEMU's cpu_clear_ignne()), so a nested
# guest run on CPU 0 can be handed L1's state (docs/reliability.md,
# section 7; vm-test's lib.sh guest_start does the same).
set -eu
kernel=$1; shift
cmd=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root/bin" "$work/root/proc" "$work/root/sys" \
	"$work/root/dev" "$work/root/host"
cp "$(command -v busybox)" "$work/root/bin/busybox"
cat > "$work/root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t 9p -o trans=virtio,version=9p2000.L,ro host /host
echo "KVMNG-GUEST: booted $(uname -r)"
mount -t proc proc /host/proc 2>/dev/null
mount -t sysfs sys /host/sys 2>/dev/null
mount -t devtmpfs dev /host/dev 2>/dev/null
mount -t tmpfs tmp /host/tmp 2>/dev/null
cmd=$(sed -n 's/.*kvmng_cmd=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "KVMNG-GUEST: running $cmd on CPUs 1-2"
taskset -c 1,2 chroot /host $cmd
echo "KVMNG-GUEST: exit status $?"
poweroff -f
INIT
chmod +x "$work/root/init"
(cd "$work/root" && find . | cpio -o -H newc 2>/dev/null | gzip) > "$work/initramfs.gz"
timeout ${BOOT_TIMEOUT:-600} qemu-system-x86_64 -accel tcg -cpu max -m 2G -smp 3 \
	-kernel "$kernel" -initrd "$work/initramfs.gz" -nographic -no-reboot \
	-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on \
	-append "console=ttyS0 panic=-1 kvmng_cmd=$cmd"
