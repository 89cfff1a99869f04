#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# make smp-smoke: kvmng-smp (an SMP VMM in miniature, plain ioctl()) with
# 2 and 4 vCPUs, each with QEMU's two ways of masking signals in vCPU
# threads, in four modes:
#   native       no shim
#   auto         libkvmshim.so, KVMNG_MODE=auto (translated)
#   hot          the same without a census: the hot calls (KVM_RUN, the
#                register ioctls, KVM_IRQ_LINE) take the shim's hot-call
#                path, which is only taken when no census is kept
#   passthrough  libkvmshim.so, KVMNG_MODE=passthrough (observed only)
# Every mode must print the native run's summary byte for byte and exit
# with its status, and the native run must pass. A shim run with the
# native result must also have the census to show for it: the VMM's
# ioctls translated (auto) or passed through (passthrough), so that a shim
# that was not in the way cannot pass (hot has no census: its summary must
# match, as auto's census shows the same calls translated).
#
#   smp-smoke.sh KVMNG_SMP LIBKVMSHIM OUTDIR [ROUNDS]
#
# Outputs, errors, censuses and report.txt (each run's wall time) go to
# OUTDIR. Exit status 0 when everything matches, 1 otherwise.
set -u

bin=$1
shim=$2
out=$3
rounds=${4:-200}
modes="native auto hot passthrough"
variants="2:sigmask 2:kvm-sigmask 4:sigmask 4:kvm-sigmask"
# Each run checks its own time (--timeout: 200 rounds take 0.2-2 s here,
# 2000 rounds up to 19 s at load average 11); the outer limit only catches
# a run that cannot even reach its watchdog.
smp_timeout=$((20 + rounds / 50))
run_timeout=$((smp_timeout + 10))

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "!!! smp-smoke: /dev/kvm is missing or not read-write: SKIPPED (0 runs)"
	exit 0
fi
for f in "$bin" "$shim"; do
	[ -e "$f" ] || { echo "smp-smoke: $f is missing"; exit 1; }
done
command -v jq >/dev/null || { echo "smp-smoke: jq is missing"; exit 1; }

rm -rf "$out"
mkdir -p "$out"
report=$out/report.txt
bad=0
t_all=$(date +%s%N)

fail() {
	echo "smp-smoke: FAIL: $*" | tee -a "$out/failures.txt"
	bad=1
}

# The census of one run: every KVM ioctl of the VMM went the mode's way.
check_census() {
	local mode=$1 census=$2 vcpus=$3 want_mode want_path
	if [ ! -s "$census" ]; then
		fail "$name $mode: no census in $census (was the shim loaded?)"
		return
	fi
	case $mode in
	auto) want_mode=auto want_path=translated ;;
	passthrough) want_mode=passthrough want_path=passthrough ;;
	esac
	local got
	got=$(jq -r --arg m "$want_mode" --arg p "$want_path" '
		select(.mode == $m) | .commands[] |
		select(.name == "KVM_RUN" or .name == "KVM_SET_USER_MEMORY_REGION" or
		       .name == "KVM_IRQ_LINE" or .name == "KVM_SIGNAL_MSI" or
		       .name == "KVM_IRQFD" or .name == "KVM_SET_IRQCHIP" or
		       .name == "KVM_SET_GSI_ROUTING") |
		"\(.name) \(.count) \(.[$p])"' "$census" | sort)
	for cmd in KVM_RUN KVM_SET_USER_MEMORY_REGION KVM_IRQ_LINE KVM_SIGNAL_MSI KVM_IRQFD KVM_SET_IRQCHIP KVM_SET_GSI_ROUTING; do
		local line count went
		line=$(grep "^$cmd " <<<"$got")
		count=$(cut -d' ' -f2 <<<"$line")
		went=$(cut -d' ' -f3 <<<"$line")
		if [ -z "$line" ] || [ "$count" = 0 ] || [ "$went" != "$count" ]; then
			fail "$name $mode: census: $cmd ${line:-absent} (count, $want_path): want all $want_path"
		fi
	done
	# A census with a row per thread (the shim since b39c24e): each vCPU
	# thread's hot calls, KVM_RUN and its vCPU ioctls after the first one,
	# went the mode's way (setup ioctls before the first KVM_RUN fall back
	# by design).
	if jq -e 'select(.threads != null)' "$census" >/dev/null 2>&1; then
		local rows threads
		rows=$(jq -r --arg p "$want_path" '
			.threads[]? | select(.vcpu != null) |
			"\(.vcpu) \(.run.translated + .run.fallback + .run.passthrough) \(.run[$p]) \(.other.translated + .other.fallback + .other.passthrough) \(.other[$p])"' "$census")
		threads=$(grep -c . <<<"$rows")
		if [ "$threads" != "$vcpus" ]; then
			fail "$name $mode: census: $threads vCPU threads, want $vcpus"
		fi
		local vcpu runs run_went others other_went
		while read -r vcpu runs run_went others other_went; do
			[ -n "$vcpu" ] || continue
			if [ "$runs" = 0 ] || [ "$runs" != "$run_went" ] || [ "$others" != "$other_went" ]; then
				fail "$name $mode: census: vCPU $vcpu's thread: KVM_RUN $run_went of $runs $want_path, vCPU ioctls after it $other_went of $others"
			fi
		done <<<"$rows"
	fi
}

printf "%-30s %10s %10s %10s %12s  %s\n" "variant ($rounds rounds)" native auto hot passthrough "same summary and status" >"$report"
for v in $variants; do
	n=${v%%:*}
	sig=${v#*:}
	name="${n}vcpu-$sig"
	times=""
	for mode in $modes; do
		base=$out/$name.$mode
		env=(-u LD_PRELOAD)
		if [ "$mode" = hot ]; then
			env=(-u KVMNG_STATS -u KVMNG_TRACE LD_PRELOAD="$shim" KVMNG_MODE=auto)
		elif [ "$mode" != native ]; then
			env=(LD_PRELOAD="$shim" KVMNG_MODE="$mode" KVMNG_STATS="$base.census")
		fi
		t0=$(date +%s%N)
		env "${env[@]}" timeout -k 5 $run_timeout "$bin" --vcpus "$n" --signals "$sig" \
			--rounds "$rounds" --timeout "$smp_timeout" >"$base.out" 2>"$base.err"
		echo $? >"$base.rc"
		times="$times $(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')"
	done
	ref=$out/$name.native
	same=yes
	if [ "$(cat "$ref.rc")" != 0 ] || [ "$(tail -n1 "$ref.out")" != "kvmng-smp: PASS" ]; then
		fail "$name native: exit status $(cat "$ref.rc"), not a PASS (the reference run must pass):"
		sed 's/^/    /' "$ref.out" "$ref.err"
		same=no
	fi
	for mode in auto hot passthrough; do
		base=$out/$name.$mode
		if ! cmp -s "$ref.out" "$base.out" || [ "$(cat "$ref.rc")" != "$(cat "$base.rc")" ]; then
			fail "$name $mode: exit status $(cat "$base.rc") (native $(cat "$ref.rc")); summary differs from native:"
			diff -u "$ref.out" "$base.out" | sed 's/^/    /'
			sed 's/^/    stderr: /' "$base.err"
			same=no
		else
			# The same result: was it the shim's doing?
			[ "$mode" = hot ] || check_census "$mode" "$base.census" "$n"
		fi
	done
	read -r tn ta th tp <<<"$times"
	printf "%-30s %9ss %9ss %9ss %11ss  %s\n" "$n vCPUs, $sig" "$tn" "$ta" "$th" "$tp" "$same" >>"$report"
done
t_all=$(awk -v a="$t_all" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
echo "total $t_all s for 4 variants x 4 modes; each run's own figures: $out/*.err" >>"$report"
cat "$report"
if [ $bad != 0 ]; then
	echo "smp-smoke: FAILED (details above and in $out)"
	exit 1
fi
echo "smp-smoke: PASS: every mode printed the native summary and status"
