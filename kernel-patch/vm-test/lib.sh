# shellcheck shell=bash
# lib.sh: what the VM scripts share. Sourced on the host by vm-test.sh,
# bench.sh and stress.sh (the caller sets prog, its name in messages, here,
# this directory, and repo, the repository), and in the guest, from
# stage/lib.sh, by guest.sh, bench-guest.sh and stress-guest.sh. Functions
# only: sourcing it runs nothing.
#
# How a run goes:
#  - the host stages into W/stage (stage): copies of what the guest runs,
#    the guest script as guest.sh, this file as lib.sh, and initramfs.gz
#    (busybox and ./init);
#  - boot_guest boots a kernel under QEMU with the host root read-only over
#    9p (tag host) and W read-write over its own path (tag out); ./init
#    mounts both and runs W/stage/guest.sh in a chroot of the host root with
#    the arguments of the kernel command line (kvmng_args, comma-separated),
#    so every path is the same in the guest as on the host;
#  - the guest speaks to the host in console lines "VMTEST: ...", which
#    boot_guest echoes as "  | ..."; the whole console goes to a log.

# ---- host side ------------------------------------------------------------

die() { echo "$prog: error: $*" >&2; exit 2; }
fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# need_tools COMMAND...: each is installed, and busybox is, statically
# linked (it is the guest's /init, without the host's libraries); sets
# busybox.
need_tools() {
	local c
	for c in "$@" busybox; do
		command -v "$c" > /dev/null ||
			die "$c is missing (apt-get install qemu-system-x86 busybox-static jq cpio)"
	done
	busybox=$(command -v busybox)
	! ldd "$busybox" > /dev/null 2>&1 ||
		die "$busybox is not statically linked (apt-get install busybox-static)"
}

# kernel_dir VAR VARIANT: the kernel directory of VARIANT: the value of
# the environment variable VAR when set (another directory of the same
# layout), else kernel.sh's cache entry for the current series.
kernel_dir() {
	if [ -n "${!1:-}" ]; then echo "${!1}"; else "$repo/kernel-patch/scripts/kernel.sh" --dir "$2"; fi
}

# need_kernels PREFIX HINT VARIANT...: each VARIANT's kernel
# (kernel_dir PREFIX$VARIANT VARIANT) is built, or die saying "run HINT".
need_kernels() {
	local prefix=$1 hint=$2 v d
	shift 2
	for v in "$@"; do
		d=$(kernel_dir "$prefix$v" "$v")
		[ -f "$d/.complete" ] || die "no built $v kernel for the current series ($d): run $hint"
	done
}

# initramfs DIR INIT: busybox (need_tools) and INIT as /init, built in DIR,
# as a gzip'd newc cpio on stdout.
initramfs() {
	local d=$1
	rm -rf "$d"
	mkdir -p "$d/bin" "$d/proc" "$d/sys" "$d/dev" "$d/host" "$d/tmp"
	cp "$busybox" "$d/bin/busybox"
	cp "$2" "$d/init"
	chmod +x "$d/init"
	(cd "$d" && find . | cpio -o -H newc 2> /dev/null | gzip -1)
	rm -rf "$d"
}

# stage W GUEST HINT FILE...: a fresh W/stage, with copies (so that
# concurrent builds cannot change them mid-run) of the repository's FILEs
# (one missing: die saying how to build it, HINT), of the script GUEST as
# guest.sh and of this file as lib.sh, and initramfs.gz with ./init.
stage() {
	local W=$1 guest=$2 hint=$3 f
	shift 3
	mkdir -p "$W"
	rm -rf "$W/stage"
	mkdir -p "$W/stage"
	for f in "$@"; do
		[ -f "$repo/$f" ] || die "$f is missing ($hint)"
		cp "$repo/$f" "$W/stage/"
	done
	cp "$guest" "$W/stage/guest.sh"
	chmod +x "$W/stage/guest.sh"
	cp "$here/lib.sh" "$W/stage/lib.sh"
	initramfs "$W/stage/init.d" "$here/init" > "$W/stage/initramfs.gz"
}

# The outer machine: QEMU 10.0 from bookworm-backports (make
# qemu-backports), not Debian 12's QEMU 7.2: under 7.2, libkrun's Linux
# guest inside the VM (guest.sh, krun-linux) did not boot in 300 s; under
# 10.0 it boots in 20-35 s.
# VMTEST_QEMU: another binary.
vmtest_qemu() {
	local q=${VMTEST_QEMU:-${KVMNG_CACHE:-$HOME/.cache/kvmng}/qemu-backports/usr/bin/qemu-system-x86_64}
	[ -x "$q" ] || die "$q is missing: run make qemu-backports (QEMU 10.0, the outer machine of the VM tests)"
	echo "$q"
}

# boot_guest TIMEOUT LOG W KDIR ARGS QEMU-OPTION... [-- KERNEL-PARAMETER...]
# Boots KDIR/bzImage with W/stage/initramfs.gz (stage) under
# vmtest_qemu QEMU-OPTION... (accelerator, CPU, memory, CPUs), the
# host root and W shared over 9p, for at most TIMEOUT seconds; the guest
# script gets ARGS (comma-separated), and VMTEST_EXTRA_PARAMS (kernel
# parameters, for experiments: kvm_amd.npt=0 ...) comes first on the
# command line. The console goes to LOG, its
# "VMTEST: " lines to stdout. loglevel=5 puts KERN_WARNING on the console:
# a WARN() or a lockdep report is printed at that level, and the callers
# search the console for them (at loglevel=4 only an oops made them
# visible, by raising the level). Sets qemu_cmd (the command as run); returns
# QEMU's exit status (124: timeout).
boot_guest() {
	local - timeout_s=$1 log=$2 W=$3 kd=$4 args=$5 opts=() params
	shift 5
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	[ $# -gt 0 ] && shift
	params="console=ttyS0 panic=-1 loglevel=5 ${VMTEST_EXTRA_PARAMS:-}${VMTEST_EXTRA_PARAMS:+ }${*}${*:+ }kvmng_out=$W kvmng_repo=$repo kvmng_args=$args"
	qemu_cmd=("$(vmtest_qemu)" "${opts[@]}" -kernel "$kd/bzImage" -initrd "$W/stage/initramfs.gz"
		-nographic -no-reboot -nodefaults -serial stdio
		-virtfs local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap
		-virtfs "local,path=$W,mount_tag=out,security_model=none"
		-append "$params")
	set +e
	timeout "$timeout_s" "${qemu_cmd[@]}" < /dev/null 2>&1 | sed -u 's/\r//g' | tee "$log" |
		sed -u -n 's/^VMTEST: /  | /p'
	return "${PIPESTATUS[0]}"
}

# The line guest_start writes to the kernel log at KERN_WARNING: on the
# console it shows that WARN() and lockdep reports, printed at that level,
# reach it (boot_guest's loglevel), so that searching the console for
# them can find them.
WARN_PROBE='kvmng-harness: a KERN_WARNING line, to show the console carries WARN() and lockdep reports'

# guest_oops LOG: the first line of the guest kernel's own complaints on
# the console (oops, panic, BUG, WARNING, KASAN, ...), cut short; empty
# if there is none.
guest_oops() {
	grep -a -E '^\[ *[0-9]+\.[0-9]+\] (Oops|Kernel panic|BUG:|WARNING:|general protection|kernel BUG|UBSAN|KASAN|list_del corruption)' "$1" |
		head -1 | cut -c1-160 || true
}

# console_check LOG: a results.tsv row on whether the guest's KERN_WARNING
# probe reached the console; none if the guest script never started.
console_check() {
	grep -a -q '^VMTEST: variant ' "$1" || return 0
	if grep -a -q "$WARN_PROBE" "$1"; then
		printf 'console\tPASS\t\tKERN_WARNING messages reach the console (WARN(), lockdep)\n'
	else
		printf 'console\tFAIL\t\tthe guest'"'"'s KERN_WARNING probe is not on the console: WARN() and lockdep reports would go unseen (loglevel)\n'
	fi
}

# last_line LOG: the last non-blank line of a console log, cut short.
last_line() { grep -a -v '^\s*$' "$1" | tail -1 | cut -c1-100; }

# hmp SOCKET COMMAND...: each HMP command through a QEMU monitor on the unix
# socket SOCKET (-monitor unix:SOCKET,server=on,wait=off), its output after
# a "### COMMAND" line. Used on both sides: by nested-watch.sh in the guest
# and by docs/reliability/crash-control-arm.sh on the host.
hmp() {
	perl -MIO::Socket::UNIX -e '
		my $s = IO::Socket::UNIX->new(Peer => shift @ARGV) or die "monitor: $!\n";
		sub drain { my ($t, $o, $b) = (shift, ""); vec(my $r = "", fileno $s, 1) = 1;
			while (select(my $x = $r, undef, undef, $t)) { sysread($s, $b, 65536) or last; $o .= $b; $t = 0.5 }
			$o }
		drain(2);
		for my $c (@ARGV) { print $s "$c\n"; print "### $c\n", drain(3), "\n" }' "$@" 2>&1
}

# ---- guest side (sourced from stage/lib.sh inside the guest) --------------

# guest_env: a clean environment: nothing of the host's shell (the chroot
# inherits /init's), no kvmng knob.
guest_env() {
	export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
	export HOME=/tmp TMPDIR=/tmp LANG=C.UTF-8
	unset LD_PRELOAD KVMNG_MODE KVMNG_STATS KVMNG_TRACE KVMNG_BACKEND KVMNG_SHIM
}

# guest_start VARIANT RUNDIR KERNELDIR: guest_env; keeps the script and
# all it starts off CPU 0 (below); sets rel (the kernel release), res
# (RUNDIR/results.tsv, emptied) and failed (0); says on the console what
# it runs on.
#
# Why off CPU 0: under QEMU's multi-threaded TCG (10.0.2) every FPU state
# restore (FXRSTOR, XRSTOR, FRSTOR, FLDENV) on any vCPU thread clears a
# bit in the *first* CPU's hflags2 with a plain read-modify-write
# (cpu_clear_ignne() in target/i386/tcg/system/fpu_helper.c), while that
# CPU's own thread rewrites the same word at every VMRUN and #VMEXIT of
# its emulated SVM. A lost update leaves CPU 0 after a #VMEXIT with the
# guest-mode bits still set: it then takes interrupts with IF clear, or
# runs with the nested guest's page tables, and a VMRUN can lose its bits
# the other way (docs/reliability.md, section 7). When the guest has a CPU
# to spare (vm-test.sh, stress.sh and fuzz.sh boot 3), every test runs on
# the others, so CPU 0 never enters SVM and has nothing of its own in that
# word to lose; the tests keep two CPUs to race on.
guest_start() {
	local n
	guest_env
	n=$(nproc --all)
	[ "$n" -ge 3 ] && taskset -p -c "1-$((n - 1))" $$ > /dev/null
	echo "<4>$WARN_PROBE" > /dev/kmsg
	rel=$(cat "$3/kernelrelease")
	res=$2/results.tsv
	: > "$res"
	failed=0
	echo "VMTEST: variant $1, kernel $rel, $(nproc) CPUs for the tests (of $n), $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"
}

now() { date +%s%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }'; }
record() { # name status seconds detail: a row of results.tsv, and the console
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >> "$res"
	echo "VMTEST: $1 $2 $3s $4"
	[ "$2" = FAIL ] && failed=$((failed + 1))
	return 0
}
note() { echo "VMTEST: ... $*"; }

# kvm_trace on | off [FILE]: KVM's exits, injected exceptions, page faults
# and exits to userspace, in a 4 MiB ring per CPU (left at that size for
# the rest of the boot) while a test runs; off with FILE keeps the ring's
# last 3000 lines there. A failure that comes once in tens of runs leaves
# the exits that led to it (under SVM a vCPU that shuts down is INIT-reset
# by KVM before KVM_RUN returns, so its registers no longer tell where it
# was).
TR=/sys/kernel/debug/tracing
KVM_EVENTS="kvm_exit kvm_inj_exception kvm_page_fault kvm_userspace_exit"
kvm_trace() {
	local e
	[ -d "$TR/events/kvm" ] || return 0
	echo 0 > "$TR/tracing_on"
	if [ "$1" = on ]; then
		echo 4096 > "$TR/buffer_size_kb"
		: > "$TR/trace"
		for e in $KVM_EVENTS; do echo 1 > "$TR/events/kvm/$e/enable"; done
		echo 1 > "$TR/tracing_on"
	else
		for e in $KVM_EVENTS; do echo 0 > "$TR/events/kvm/$e/enable"; done
		[ -n "${2:-}" ] && tail -3000 "$TR/trace" > "$2"
		: > "$TR/trace"
	fi
}

# kvmng_selftest DIR NAME TIMEOUT: run the patched tree's KVM selftest
# DIR/x86_64/NAME natively (guest.sh: kvmng_test and the tests of the
# review's findings; stress-guest.sh: the same under the bug detectors).
# The detail is the kselftest totals, else the failed assertion; kvm_util
# tests print nothing more than their seed when they pass. A failing run
# keeps KVM's trace in NAME.trace.
kvmng_selftest() {
	local bin=$1/x86_64/$2 t0 rc d
	t0=$(now)
	if [ ! -x "$bin" ]; then
		record "$2" FAIL 0 "$bin is missing (kernel.sh y builds the selftests)"
		return 0
	fi
	kvm_trace on
	timeout "$3" "$bin" > "$R/$2.log" 2>&1
	rc=$?
	if [ $rc = 0 ]; then kvm_trace off; else kvm_trace off "$R/$2.trace"; fi
	d=$(grep -E '^# Totals|^ok|^not ok' "$R/$2.log" | tail -1)
	case $rc in
	0) record "$2" PASS "$(since "$t0")" "${d:-exit 0}" ;;
	4) record "$2" FAIL "$(since "$t0")" "skipped: $(grep -i skip "$R/$2.log" | head -1)" ;;
	*) record "$2" FAIL "$(since "$t0")" "exit $rc: $(grep -m1 -E 'Assertion|not ok|==== Test' -A2 "$R/$2.log" | tr '\n' ' ' | cut -c1-200) (KVM trace: $2.trace)" ;;
	esac
}

# One VM kept open for the whole run (bench-guest.sh, fuzz-guest.sh,
# stress-guest.sh): KVM flips the scheduler's preempt-notifier static key
# when the number of VMs goes 0 -> 1 and 1 -> 0, a text_poke_bp() each
# time. With this VM alive it flips once per boot, so a benchmark's
# vm-create measures creating a VM, not that text patching. (Under
# multi-threaded TCG those flips also killed guests: vm-test.sh.)
keeper=
keeper_start() { # its output: $R/keeper.log
	perl -e 'open(my $k, "+<", "/dev/kvm") or die "/dev/kvm: $!\n";
		my $fd = syscall(16, fileno($k), 0xAE01, 0);
		die "KVM_CREATE_VM: $!\n" if $fd < 0;
		$| = 1; print "keeper VM fd $fd\n"; sleep 86400;' > "$R/keeper.log" 2>&1 &
	keeper=$!
}
keeper_stop() {
	[ -n "$keeper" ] && kill "$keeper" 2> /dev/null && wait "$keeper" 2> /dev/null
	keeper=
}
