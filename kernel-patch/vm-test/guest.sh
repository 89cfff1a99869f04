#!/bin/bash
# kvmng vm-test: the tests, run inside the TCG guest in a chroot of the host
# root (started by ./init; see vm-test.sh). Everything it writes goes to the
# run directory on the writable 9p share:
#   results.tsv   one line per step: name, PASS/FAIL/SKIP, seconds, detail
#   STEP.log      the output of each step
#   selftests.json, selftests/   kvmng-compat's results and logs
#   qemu-stats.jsonl             the shim's census of the nested QEMU
# and each step is announced on the console as "VMTEST: ..." for the host.
#
#   guest.sh VARIANT RUNDIR KERNELDIR SELFTESTDIR LIST TIMEOUT
# VARIANT y|m; KERNELDIR the kernel cache entry of the variant (bzImage,
# kernelrelease, modules/); SELFTESTDIR the y entry (selftests/,
# selftests-src/); LIST a selftest list file, or "all"; TIMEOUT seconds per
# selftest run.
set -u
v=$1 R=$2 K=$3 Y=$4 list=$5 st_timeout=$6
S=$(cd "$(dirname "$0")" && pwd)
# guest_start, now, since, record, note, kvmng_selftest
# shellcheck source=kernel-patch/vm-test/lib.sh
. "$S/lib.sh"
guest_start "$v" "$R" "$K" # rel, res, failed

# probe NAME WANT: kvmng_run(~0) must answer WANT (EINVAL: the kernel has
# the kvmng syscalls; ENOSYS: it has not, or KVM is not loaded).
probe() {
	local t0 out got
	t0=$(now)
	out=$("$S/kvmng" info 2>&1)
	echo "$out" > "$R/$1.log"
	got=$(echo "$out" | sed -n 's/.*kvmng_run(~0) answered \([A-Z]*\).*/\1/p')
	if [ "$got" = "$2" ]; then
		record "$1" PASS "$(since "$t0")" "kvmng_run(~0) = $got: $(echo "$out" | sed -n 's/.*selects the \([a-z]*\) backend.*/\1 backend/p')"
	else
		record "$1" FAIL "$(since "$t0")" "kvmng_run(~0) = ${got:-?}, want $2"
	fi
}

grep -qw svm /proc/cpuinfo && note "SVM present (nested KVM via kvm-amd)"

# ---- KVM as modules: nothing before the load, then modprobe ---------------
if [ "$v" = m ]; then
	probe probe-before-load ENOSYS
	t0=$(now)
	modprobe -d "$K/modules" -S "$rel" kvm_amd > "$R/modprobe.log" 2>&1
	for _ in 1 2 3 4 5 6 7 8 9 10; do [ -c /dev/kvm ] && break; sleep 0.5; done
	if lsmod | grep -q '^kvm_amd ' && [ -c /dev/kvm ]; then
		record modprobe PASS "$(since "$t0")" "$(lsmod | awk 'NR > 1 && /kvm|irqbypass/ {printf "%s%s", s, $1; s=" "}')"
	else
		record modprobe FAIL "$(since "$t0")" "modprobe -d $K/modules kvm_amd: $(tail -1 "$R/modprobe.log")"
	fi
fi

# ---- i. probe + the new-syscall selftests (kvmng_test,
# kvmng_memory_map_test, kvmng_ioregion_test)
probe probe EINVAL

# ---- i b. static keys flipped: 300 VMs created and destroyed -------------
# Each VM flips the scheduler's preempt-notifier static key twice (0 -> 1
# -> 0 VMs) while the other CPU runs. With jump labels every flip was a
# text_poke_bp(), and under QEMU's multi-threaded TCG this step killed 14
# of 18 boots with "Oops: int3" (vm-test.sh). The kernels have no jump
# labels now: an oops fails the guest-kernel row.
t0=$(now)
perl -e 'for (1 .. 300) {
	open(my $k, "+<", "/dev/kvm") or die "/dev/kvm: $!\n";
	my $fd = syscall(16, fileno($k), 0xAE01, 0); # KVM_CREATE_VM
	die "KVM_CREATE_VM: $!\n" if $fd < 0;
	POSIX::close($fd); close($k);
} use POSIX; print "300 VMs created and destroyed\n"' > "$R/text-poke.log" 2>&1
rc=$?
record text-poke "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" "exit $rc: $(tail -1 "$R/text-poke.log")"
kvmng_selftest "$Y/selftests" kvmng_test 300
# 10 s of memory maps under running vCPUs (issue 15, major 4)
kvmng_selftest "$Y/selftests" kvmng_memory_map_test 300
kvmng_selftest "$Y/selftests" kvmng_ioregion_test 300

# ---- ii. the C conformance suite, native (no preload, no trap) -----------
# Every check must pass natively, kvmng_ioregion (1009) included.
t0=$(now)
env -u LD_PRELOAD timeout 900 "$S/conformance" > "$R/conformance.log" 2>&1
rc=$?
sum=$(grep -m1 '^conformance:' "$R/conformance.log")
nfail=$(grep -c '^not ok' "$R/conformance.log")
failing=$(grep '^not ok' "$R/conformance.log" | head -3 | cut -c1-120 | tr '\n' ';')
if ! grep -q 'kvmng syscalls: present' "$R/conformance.log"; then
	record conformance FAIL "$(since "$t0")" "exit $rc: the kvmng syscalls are absent (ENOSYS) natively"
elif [ "$rc" = 0 ] && [ -n "$sum" ] && [ "$nfail" = 0 ]; then
	record conformance PASS "$(since "$t0")" "$sum (native: no LD_PRELOAD)"
else
	record conformance FAIL "$(since "$t0")" "exit $rc: ${sum:-no summary}; $nfail failed: ${failing:-see conformance.log}"
fi

# ---- ii b. the kernel's kvmng syscalls against the emulation ------------
# kvmng-fuzz --differential: native backend against legacy backend on
# identical VMs (docs/reliability.md, section 5). First the decided cases
# (--regressions), then a 40 s smoke of random rounds from a new seed each
# run (named in the result, so that a failure replays with
# `kvmng-fuzz --differential --seed S --round R -v`; a diverging run
# reports both guests' registers and stack). Any divergence, crash or
# hang fails the step.
t0=$(now)
"$S/kvmng-fuzz" --differential --regressions > "$R/diff-fuzz.log" 2>&1
rc=$?
reg=$(grep -m1 '^kvmng-fuzz --differential --regressions:' "$R/diff-fuzz.log")
record diff-fuzz "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" \
	"exit $rc: ${reg:-no summary: $(tail -1 "$R/diff-fuzz.log" | cut -c1-160)}"
t0=$(now)
seed=$(date +%s%N | cut -c1-12)
timeout 300 "$S/kvmng-fuzz" --differential --execs 1000000 --seconds 40 --seed "$seed" \
	> "$R/diff-fuzz-smoke.log" 2>&1
rc=$?
sum=$(grep -m1 '^kvmng-fuzz --differential: [0-9]' "$R/diff-fuzz-smoke.log" | sed 's/^kvmng-fuzz --differential: //')
record diff-fuzz-smoke "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" \
	"exit $rc, seed $seed: ${sum:-no summary: $(tail -1 "$R/diff-fuzz-smoke.log" | cut -c1-160)}"

# ---- iii. legacy selftests, native vs. the shim in syscall mode ----------
t0=$(now)
if [ "$list" = all ]; then
	sel=(--all)
else
	sel=(--list "$list")
fi
"$S/kvmng-compat" selftests --mode native --mode syscall --no-build \
	--src "$Y/selftests-src" --build-dir "$Y/selftests" "${sel[@]}" \
	--notes "$S/notes.list" --shim "$S/libkvmshim.so" --timeout "$st_timeout" \
	--work-dir "$R/selftests" --json "$R/selftests.json" \
	--report "$R/selftests.md" --section "vm-test selftests" 2>&1 |
	tee "$R/selftests.log" |
	# Progress on the console: every tenth test and the last ("[n/total] ..."
	# lines of kvmng-compat off a terminal).
	awk -F'[][/]' '/^\[[0-9]+\/[0-9]+\] / && ($2 % 10 == 0 || $2 == $3) {
		print "VMTEST: ... selftests " $2 "/" $3; fflush() }'
rc=${PIPESTATUS[0]}
if [ -s "$R/selftests.json" ]; then
	d=$(jq -r '
		def cnt(m): [.tests[] | .runs[m].outcome.kind] | group_by(.) | map("\(length) \(.[0])") | join(" ");
		"native: \(cnt("native")); syscall: \(cnt("syscall")); same \([.tests[] | select(.verdicts.syscall == "same")] | length)/\(.tests | length), flaky \([.tests[] | select(.verdicts.syscall == "flaky")] | length), differ \([.tests[] | select(.verdicts.syscall == "differs")] | length)"' "$R/selftests.json")
else
	d="no results: $(tail -3 "$R/selftests.log" | tr '\n' ' ')"
fi
case $rc in
0) record selftests PASS "$(since "$t0")" "$d" ;;
*) record selftests FAIL "$(since "$t0")" "exit $rc: $d" ;;
esac

# ---- iv. unmodified QEMU under the shim (syscall mode), nested Linux -------
qemu_nested() { # NAME CPU SMP
	local t0 rc watch stall="" mon=/tmp/kvmng-$1.mon
	rm -f "$R/$1-stats.jsonl" "$R/$1-stall.txt" "$mon"
	t0=$(now)
	# Each console line gets the seconds since the start, outside the nested
	# guest: a nested Linux whose clock stalls (docs/kernel.md, Gaps) prints
	# its own uptime, not where the wall-clock time went. A console silent
	# for 60 s has the nested QEMU's vCPUs and L1's injections written to
	# NAME-stall.txt (nested-watch.sh), pass or fail.
	"$S/nested-watch.sh" "$R/$1.log" "$mon" "$R/$1-stall.txt" 60 &
	watch=$!
	timeout 600 "$S/kvmng" exec --mode syscall --stats "$R/$1-stats.jsonl" -- \
		qemu-system-x86_64 -accel kvm -cpu "$2" -m 256 -smp "$3" -nodefaults -no-reboot \
		-display none -serial stdio -device isa-debug-exit,iobase=0x501,iosize=1 \
		-monitor "unix:$mon,server=on,wait=off" \
		-kernel "$K/bzImage" -initrd "$S/nested-initramfs.gz" \
		-append "console=ttyS0 panic=-1 loglevel=4" < /dev/null 2>&1 |
		perl -ne 'BEGIN { $| = 1; $t0 = time } printf "%4d %s", time - $t0, $_' \
			> "$R/$1.log"
	rc=${PIPESTATUS[0]}
	kill "$watch" 2> /dev/null
	wait "$watch" 2> /dev/null
	rm -f "$mon"
	[ -s "$R/$1-stall.txt" ] && stall=" (console silent 60 s: $1-stall.txt)"
	local ok
	ok=$(grep -m1 -a 'kvmng-nested-ok' "$R/$1.log" | tr -d '\r')
	# The guest ends QEMU through isa-debug-exit: status (0x10 << 1) | 1.
	if [ -n "$ok" ] && [ "$rc" = 33 ] && echo "$ok" | grep -q ", $3 CPUs online\$"; then
		record "$1" PASS "$(since "$t0")" "-cpu $2 -smp $3, exit $rc: $ok$stall"
		return 0
	fi
	if [ -n "$ok" ]; then
		record "$1" FAIL "$(since "$t0")" "-cpu $2 -smp $3, exit $rc (33 expected), $3 CPUs expected: $ok$stall"
		return 1
	fi
	record "$1" FAIL "$(since "$t0")" "-cpu $2 -smp $3, exit $rc, no kvmng-nested-ok: $(grep -a -v '^\s*$' "$R/$1.log" | tail -1 | tr -d '\r' | cat -v | cut -c1-160)$stall"
	return 1
}
# The nested Linux gets no SVM (-svm): it needs no KVM of its own, and the
# intermittent stall seen in it (an RCU stall of about a minute, at load
# 5-7, docs/kernel.md) came while its built-in kvm_amd initialized on
# nested-nested SVM. With -svm its kvm_amd stops at "SVM not supported".
qemu_nested qemu-nested max,-svm 1
# The same with two vCPUs: the nested Linux brings its AP up (INIT/SIPI,
# IPIs, two vCPU threads in KVM_RUN while QEMU remaps memory).
qemu_nested qemu-nested-smp2 max,-svm 2

# The census: the hot paths must have been translated (kvmng syscalls, the
# native backend), never fallbacks; every fallback is listed with its reason.
# And per vCPU thread: every thread that ran a vCPU had all its KVM_RUN
# calls, and its vCPU ioctls after its first KVM_RUN, translated.
census_check() { # NAME (the census of run NAME) RECORD VCPUS [GROUPS]
# GROUPS: the groups of hot calls the VMM must have made (default all four;
# libkrun injects interrupts through irqfd only, so it makes no irq call).
local need=${4:-run state irq memory}
t0=$(now)
st=$R/$1-stats.jsonl
"$S/kvmng" stats "$st" > "$R/$2.txt" 2>&1
# A vCPU ioctl that its creating thread makes before that thread's first
# KVM_RUN stays on the ioctl by design (docs/shim.md, the binding rules):
# those fallbacks (QEMU's reset-time register puts) are counted apart and
# allowed for the state commands; any other fallback of a hot path fails.
setup_reason='^(vCPU binds at its first KVM_RUN|creating thread binds at KVM_RUN)$'
if [ -s "$st" ]; then
	local chk bad tot hot nfb threads
	chk=$(jq -rs '
		def grp: if .name == "KVM_RUN" then "run"
			elif (.name | test("^KVM_(GET|SET)_(REGS|SREGS|SREGS2|FPU|MSRS|XSAVE|XSAVE2|XCRS|LAPIC|VCPU_EVENTS|MP_STATE|DEBUGREGS|CPUID2|TSC_KHZ|NESTED_STATE)$")) then "state"
			elif (.name | test("^KVM_(INTERRUPT|NMI|SMI|IRQ_LINE|IRQ_LINE_STATUS|SIGNAL_MSI)$")) then "irq"
			elif (.name | test("^KVM_SET_USER_MEMORY_REGION2?$")) then "memory"
			else "other" end;
		(map(.backend) | unique | join(",")) as $backends |
		(map(.mode) | unique | join(",")) as $modes |
		[.[].commands[]] | group_by(.name) | map({name: .[0].name, count: (map(.count) | add),
			translated: (map(.translated) | add), fallback: (map(.fallback) | add),
			passthrough: (map(.passthrough) | add),
			reasons: (map(.fallback_reasons | to_entries[]) | group_by(.key) | map({key: .[0].key, value: (map(.value) | add)}) | from_entries)}) as $c |
		($c | map(. + {g: grp})) as $c |
		(["run", "state", "irq", "memory"] | map(. as $g | {g: $g, n: ($c | map(select(.g == $g)))})) as $groups |
		"backend=\($backends) mode=\($modes)",
		($groups[] | "group \(.g) commands=\(.n | map(.name) | join(",")) count=\(.n | map(.count) | add // 0) translated=\(.n | map(.translated) | add // 0) fallback=\(.n | map(.fallback) | add // 0) setup=\([.n[].reasons | to_entries[] | select(.key | test($setup)) | .value] | add // 0)"),
		"total count=\($c | map(.count) | add) translated=\($c | map(.translated) | add) fallback=\($c | map(.fallback) | add) passthrough=\($c | map(.passthrough) | add)",
		($c[] | select(.fallback > 0) | "fallback \(.name) \(.fallback): \(.reasons | to_entries | map("\(.key) (\(.value))") | join("; "))")
	' --arg setup "$setup_reason" "$st" 2>&1)
	echo "$chk" > "$R/$2.check"
	bad=""
	echo "$chk" | grep -q '^backend=native mode=syscall$' || bad="$bad backend/mode not native/syscall;"
	while read -r _ g _ count translated fallback setup; do
		count=${count#count=} translated=${translated#translated=} fallback=${fallback#fallback=} setup=${setup#setup=}
		allowed=0
		[ "$g" = state ] && allowed=$setup
		if [ "$count" = 0 ] && ! [[ " $need " == *" $g "* ]]; then
			continue
		fi
		# Calls the thread made before its first KVM_RUN (allowed) may be all
		# there is (libkrun sets registers up once and never syncs them).
		if [ "$count" = 0 ] || { [ "$translated" = 0 ] && [ "$count" != "$allowed" ]; } || [ "$fallback" != "$allowed" ]; then
			bad="$bad $g: $count calls, $translated translated, $fallback fallbacks ($allowed allowed);"
		fi
	done <<< "$(echo "$chk" | grep '^group ')"
	tot=$(echo "$chk" | sed -n 's/^total //p')
	hot=$(echo "$chk" | awk '/^group / {sub("count=", "", $4); sub("translated=", "", $5); sub("setup=", "", $7); printf "%s%s %s/%s%s", s, $2, $5, $4, ($7 > 0 ? " (" $7 " before the first KVM_RUN)" : ""); s=", "}')
	nfb=$(grep -c '^fallback ' "$R/$2.check")
	threads=$(jq -rs '[.[].threads // [] | .[] | select(.run.translated + .run.fallback + .run.passthrough > 0)] |
		"\(length) \([.[] | select(.run.fallback + .run.passthrough + .other.fallback + .other.passthrough > 0)] | length) \(map("vCPU \(.vcpu): run \(.run.translated), after \(.other.translated)") | join("; "))"' "$st")
	read -r nthreads nbadthreads threads_text <<< "$threads"
	[ "$nthreads" = "$3" ] || bad="$bad $nthreads vCPU threads in the census, not $3;"
	[ "$nbadthreads" = 0 ] || bad="$bad $nbadthreads vCPU thread(s) with hot calls not translated;"
	if [ -z "$bad" ]; then
		record "$2" PASS "$(since "$t0")" "hot paths translated (translated/calls): $hot; per vCPU thread: $threads_text; all: $tot; $nfb command(s) with fallbacks"
	else
		record "$2" FAIL "$(since "$t0")" "$bad all: $tot"
	fi
	grep '^fallback ' "$R/$2.check" | while read -r line; do note "$line"; done
else
	record "$2" FAIL "$(since "$t0")" "the shim wrote no census ($st)"
fi
}
census_check qemu-nested qemu-stats 1
census_check qemu-nested-smp2 qemu-smp2-stats 2

# ---- v. a second VMM: libkrun under the shim (syscall mode) ---------------
# libkrun (crates.io, on rust-vmm's kvm-ioctls) through compat-tests/kvmng-krun's
# launcher, natively and under the shim in syscall mode, here on the
# kernel's own syscalls:
#  - krun: the SMP guest (compat-tests/qemu/smp.S) on 2 and 4 vCPUs;
#    kvmng-compat fails the step unless both runs print the same lines and
#    exit the same way, and the census shows every vCPU thread's KVM_RUN
#    translated (--require-stats);
#  - krun-linux: this kernel (vmlinux, from the bzImage by vm-test.sh) with
#    the nested initramfs on 2 vCPUs; both runs must print kvmng-nested-ok
#    with "2 CPUs online" and exit 0 (libkrun ends when the guest resets
#    through the i8042: kvmng_end=reboot), and the census is checked per
#    vCPU thread as QEMU's is.  libkrun logs at info level (--log 3): one
#    line for how its vCPU stopped (KVM_EXIT_SHUTDOWN, HLT, a reset, an
#    error), which a failure's detail quotes.
t0=$(now)
"$S/kvmng-compat" qemu --mode syscall --krun "$S/kvmng-krun" --shim "$S/libkvmshim.so" \
	--scenario krun-smp2 --scenario krun-smp4 --require-stats --timeout 300 \
	--work-dir "$R/krun" --json "$R/krun.json" > "$R/krun.log" 2>&1
rc=$?
# One line per scenario ("krun  krun-smp2  native exit 0 … | syscall …")
# and the census's vCPU threads of each shim run.
d=$( (grep -E '^krun +krun-smp' "$R/krun.log" | sed -E 's/^krun +//; s/ +PROBLEMS:.*/ (PROBLEMS: krun.log)/'
	sed -n 's/^--- shim statistics: \(krun-smp[0-9]*\) .* --- threads /\1 census: /p' "$R/krun.log") |
	tr -s ' ' | paste -sd ';' | sed 's/;/; /g')
[ -n "$d" ] || d=$(grep -v '^\s*$' "$R/krun.log" | tail -1 | cut -c1-200)
record krun "$([ $rc = 0 ] && echo PASS || echo FAIL)" "$(since "$t0")" "exit $rc: $d"

krun_linux() { # NAME MODE VCPUS
	local t0 rc pre=() ok why
	rm -f "$R/$1-stats.jsonl"
	[ "$2" = syscall ] && pre=("$S/kvmng" exec --mode syscall --stats "$R/$1-stats.jsonl" --)
	t0=$(now)
	timeout 300 "${pre[@]}" "$S/kvmng-krun" --log 3 --vcpus "$3" --mem 256 \
		--initrd "$S/nested-initramfs.gz" --cmdline "console=ttyS0 panic=-1 loglevel=4 kvmng_end=reboot" \
		"$S/vmlinux-$v" < /dev/null 2>&1 | perl -ne 'BEGIN { $| = 1; $t0 = time } printf "%4d %s", time - $t0, $_' > "$R/$1.log"
	rc=${PIPESTATUS[0]}
	ok=$(grep -m1 -a 'kvmng-nested-ok' "$R/$1.log" | tr -d '\r' | sed 's/^ *[0-9]* //')
	if [ -n "$ok" ] && [ "$rc" = 0 ] && echo "$ok" | grep -q ", $3 CPUs online\$"; then
		record "$1" PASS "$(since "$t0")" "$2, $3 vCPUs, exit $rc: $ok"
	else
		why=$(grep -a -o -E 'krun_vmm[a-z_:]*\] .*' "$R/$1.log" | grep -v -m1 'Vmm is stopping' | cut -c1-100)
		record "$1" FAIL "$(since "$t0")" "$2, $3 vCPUs, exit $rc (0 expected), ${ok:-no kvmng-nested-ok}; libkrun: ${why:-nothing logged}; last console line: $(grep -a -v -e '^\s*$' -e 'krun_vmm' "$R/$1.log" | tail -1 | tr -d '\r' | cat -v | cut -c1-120) ($(LC_ALL=C tr -d '\n\r\t -~' < "$R/$1.log" | wc -c) bytes outside printable ASCII in $1.log)"
	fi
}
krun_linux krun-linux-native native 2
krun_linux krun-linux syscall 2
census_check krun-linux krun-linux-census 2 "run state memory"

# ---- KVM as modules: unload, nothing again --------------------------------
if [ "$v" = m ]; then
	t0=$(now)
	if rmmod kvm_amd > "$R/rmmod.log" 2>&1 && rmmod kvm >> "$R/rmmod.log" 2>&1; then
		record rmmod PASS "$(since "$t0")" "kvm_amd and kvm unloaded (no binding left a module reference)"
	else
		record rmmod FAIL "$(since "$t0")" "$(tail -1 "$R/rmmod.log")"
	fi
	probe probe-after-unload ENOSYS
fi

echo "VMTEST: done, $failed failed"
exit $((failed > 0))
