#!/usr/bin/env bash
# kernel.sh: check the kvmng series and build the patched Linux 6.12 kernels
# (`make kernel`).
#
#   kernel.sh [VARIANT...]     check the series, then build each variant (or
#                              take it from the cache); default: y m
#   kernel.sh --check          only the series checks
#   kernel.sh --dir VARIANT    print the cache directory of VARIANT for the
#                              current inputs (built or not)
#   kernel.sh --each [VARIANT] prove that each patch builds on its own: apply
#                              the series patch by patch onto one build tree
#                              ($KVMNG_CACHE/kbuild/each-VARIANT) and build
#                              after each (incremental, ccache), reporting
#                              per patch (default VARIANT: y; not cached,
#                              not part of make kernel); for y, every patch
#                              that touches the ABI or its implementation
#                              is also booted under QEMU TCG (boot-test.sh)
#                              and the kvmng selftests built so far run in
#                              it (KVMNG_EACH_TESTS=0: build only)
#
# Variants: y = KVM built in (config/kvm-builtin.config), m = KVM as modules
# (config/kvm-modules.config), debug = y + the kernel's bug detectors
# (config/kvm-debug.config). Each is x86_64_defconfig + config/common.config
# (9p root, serial console, kcmp; no display, sound, USB, disks, wireless,
# NICs: a third fewer objects) + its own fragment.
#
# Every run checks the series, even when the kernels are cached: each patch
# of series/NNNN-*.patch (0001 on; 0000 is the cover letter) must apply in
# order both with `git am` and with `patch -p1 -F0` (no fuzz), the two
# results must be identical, the file patch 0001 adds must be byte-identical
# to include/uapi/linux/kvmng.h (the ABI's one source) and no later patch
# may change it, and scripts/checkpatch.pl --strict must report 0 errors and
# 0 warnings on each.
#
# A build copies $KVMNG_LINUX_SRC (never modified) to $KVMNG_CACHE/kbuild/V,
# applies the series with patch -p1, merges common.config and the fragment (merge_config.sh),
# and runs make -j$(nproc) CC="ccache gcc" bzImage (and modules for m) with
# CCACHE_DIR=$KVMNG_CACHE/ccache (5 GiB). The quiet make output goes to
# $KVMNG_CACHE/kbuild/V.log (path printed; its last 50 lines are shown on
# failure); the terminal gets a line counter of compiled objects.
# Results land in $KVMNG_CACHE/kernels/V-KEY/, KEY being a hash of the
# series, the fragment, this script, the linux-source package and gcc:
#   bzImage  config  System.map  kernelrelease  build.log.gz  build.json
#   modules/lib/modules/REL/...         (m: modules_install, stripped)
#   selftests/  selftests-src/.../kvm/Makefile   (y: the KVM selftests of
#                                       the patched tree, kvmng_test included)
# y also compiles KVM's objects again with CONFIG_KVMNG=n and -Werror: the
# series must build, warning-free, with kvmng configured out.
# Unchanged inputs are a cache hit: seconds (the series checks).
#
# Environment: KVMNG_CACHE, KVMNG_LINUX_SRC, KVMNG_JOBS (default nproc),
# KVMNG_CCACHE_DIR (another ccache, e.g. to time a cold build),
# KVMNG_KERNEL_FORCE=1 (rebuild even when cached).
set -euo pipefail
# Called as `make -s kernel` (make test does), the -s would reach Kbuild
# through MAKEFLAGS and silence its "  CC" lines: no progress for the whole
# build, and 0 objects counted. The builds here take their own -j.
unset MAKEFLAGS MFLAGS MAKELEVEL GNUMAKEFLAGS

here=$(cd "$(dirname "$0")" && pwd)
kp=$(dirname "$here")
cache=${KVMNG_CACHE:-$HOME/.cache/kvmng}
src=${KVMNG_LINUX_SRC:-$cache/linux-source-6.12}
jobs=${KVMNG_JOBS:-$(nproc)}
export CCACHE_DIR=${KVMNG_CCACHE_DIR:-$cache/ccache}
export CCACHE_NOHASHDIR=1          # no -g in these configs: paths do not matter
export KBUILD_BUILD_USER=kvmng KBUILD_BUILD_HOST=kvmng
shopt -s nullglob
series=()
for p in "$kp"/series/[0-9][0-9][0-9][0-9]-*.patch; do
	case $(basename "$p") in 0000-*) ;; *) series+=("$p") ;; esac
done
shopt -u nullglob

die() { echo "kernel.sh: error: $*" >&2; exit 1; }
common=$kp/config/common.config

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

fragment_of() {
	case $1 in
	y) echo "$kp/config/kvm-builtin.config" ;;
	m) echo "$kp/config/kvm-modules.config" ;;
	debug) echo "$kp/config/kvm-debug.config" ;;
	*) die "unknown variant '$1' (y: KVM built in, m: KVM as modules, debug: y + KASAN, lockdep, kmemleak)" ;;
	esac
}

# The cache key of a variant: everything its build depends on.
key_of() {
	local frag
	frag=$(fragment_of "$1")
	{
		echo "variant $1"
		for p in "${series[@]}"; do echo "== $(basename "$p")"; cat "$p"; done
		echo "== fragment"; cat "$common" "$frag"
		echo "== script"; cat "$0"
		echo "== linux-source $(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || true)"
		sed -n '1,6p' "$src/Makefile"
		echo "== gcc $(gcc -dumpfullversion 2>/dev/null || true)"
	} | sha256sum | cut -c1-16
}

dir_of() { echo "$cache/kernels/$1-$(key_of "$1")"; }

# ---- the series checks -------------------------------------------------
check_series() {
	local t0=$SECONDS tmp f p out
	[ ${#series[@]} -gt 0 ] || die "no patches in $kp/series"
	[ -f "$src/Makefile" ] || die "$src is not a Linux tree (make linux-source extracts it)"
	tmp=$(mktemp -d)
	mkdir -p "$tmp/git" "$tmp/plain"
	# Only the files the series touches: seconds instead of a 1.7 GB copy.
	while read -r f; do
		if [ -e "$src/$f" ]; then
			(cd "$src" && cp --parents "$f" "$tmp/git/" && cp --parents "$f" "$tmp/plain/")
		fi
	done < <(grep -h '^diff --git a/' "${series[@]}" | awk '{print substr($3, 3)}' | sort -u)
	(
		cd "$tmp/git"
		export GIT_AUTHOR_NAME=kvmng GIT_AUTHOR_EMAIL=kvmng@localhost \
			GIT_COMMITTER_NAME=kvmng GIT_COMMITTER_EMAIL=kvmng@localhost
		git init -q . && git add -A && git commit -qm base
		for p in "${series[@]}"; do
			if ! out=$(git am -q "$p" 2>&1); then
				echo "$out" >&2
				die "$(basename "$p") does not apply with git am after the patches before it"
			fi
		done
	)
	for p in "${series[@]}"; do
		if ! out=$(patch -d "$tmp/plain" -p1 -F0 -N --no-backup-if-mismatch < "$p" 2>&1); then
			echo "$out" >&2
			die "$(basename "$p") does not apply with patch -p1 -F0 after the patches before it"
		fi
	done
	if ! diff -r -x .git "$tmp/git" "$tmp/plain" > "$tmp/diff"; then
		head -40 "$tmp/diff" >&2
		rm -rf "$tmp"
		die "git am and patch -p1 give different trees"
	fi
	echo "  applies in order: ${#series[@]} patches with git am and with patch -p1 (no fuzz), identical results"
	# The uapi header: patch 0001 adds exactly kernel-patch/include's file.
	local hdr=include/uapi/linux/kvmng.h
	case $(basename "${series[0]}") in 0001-*) ;; *) die "the series does not start with patch 0001" ;; esac
	mkdir -p "$tmp/first"
	(cd "$tmp/first" && git apply --include="$hdr" "${series[0]}") ||
		die "$(basename "${series[0]}") does not create $hdr"
	if ! cmp -s "$tmp/first/$hdr" "$kp/$hdr"; then
		{ diff -u "$kp/$hdr" "$tmp/first/$hdr" || true; } | head -40 >&2
		rm -rf "$tmp"
		die "$(basename "${series[0]}") adds a $hdr that differs from kernel-patch/$hdr (regenerate the patch)"
	fi
	cmp -s "$tmp/git/$hdr" "$kp/$hdr" ||
		die "a patch after $(basename "${series[0]}") changes $hdr (the ABI changes in kernel-patch/$hdr and patch 0001 only)"
	echo "  $hdr: patch $(basename "${series[0]}" | cut -c1-4) adds it byte-identical to kernel-patch/$hdr, no later patch changes it"
	# checkpatch, patch by patch.
	local bad=0 total line="" e w c
	for p in "${series[@]}"; do
		out=$(cd "$src" && perl scripts/checkpatch.pl --strict --no-color "$p" 2>&1) || true
		total=$(printf '%s\n' "$out" | grep -m1 '^total:' || true)
		read -r e w c < <(printf '%s\n' "$total" | sed -n 's/^total: \([0-9]*\) errors, \([0-9]*\) warnings, \([0-9]*\) checks.*/\1 \2 \3/p') || true
		if [ -z "${e:-}" ]; then
			printf '%s\n' "$out" | tail -20 >&2
			die "checkpatch.pl gave no summary for $(basename "$p")"
		fi
		if [ "$e" != 0 ] || [ "$w" != 0 ]; then
			printf '%s\n' "$out" >&2
			bad=1
		fi
		line="$line $(basename "$p" | cut -c1-4):$e/$w/$c"
	done
	rm -rf "$tmp"
	[ $bad = 0 ] || die "checkpatch.pl --strict reports errors or warnings (above)"
	echo "  checkpatch.pl --strict (errors/warnings/checks):$line"
	echo "  series checks done in $((SECONDS - t0)) s"
}

# ---- one build -----------------------------------------------------------
# Counts compiled objects (CC/AS lines of the quiet make output) against the
# number the previous build of this variant compiled.
progress() {
	local label=$1 total=$2 log=$3 n=0 next=0 pct line t0=$SECONDS tty=0
	[ -t 2 ] && tty=1
	while IFS= read -r line; do
		printf '%s\n' "$line" >> "$log"
		case $line in
		"  CC "* | "  AS "* | "  CC [M] "* | "  AS [M] "*) n=$((n + 1)) ;;
		*) continue ;;
		esac
		if [ "$total" -gt 0 ]; then
			pct=$((n * 100 / total))
			[ $pct -gt 99 ] && pct=99
		else
			pct=0
		fi
		if [ $tty = 1 ]; then
			if [ $((n % 10)) = 0 ]; then
				printf '\r  [%s] %5d/%d objects (%2d%%) %s ' "$label" "$n" "$total" "$pct" "$(fmt_secs $((SECONDS - t0)))" >&2
			fi
		elif [ "$total" -gt 0 ] && [ $pct -ge $next ]; then
			printf '  [%s] %5d/%d objects (%2d%%) %s\n' "$label" "$n" "$total" "$pct" "$(fmt_secs $((SECONDS - t0)))" >&2
			next=$((pct - pct % 10 + 10))
		elif [ "$total" = 0 ] && [ $((n % 500)) = 0 ]; then
			printf '  [%s] %5d objects %s\n' "$label" "$n" "$(fmt_secs $((SECONDS - t0)))" >&2
		fi
	done
	[ $tty = 1 ] && printf '\r\033[K' >&2
	printf '  [%s] %d objects compiled in %s\n' "$label" "$n" "$(fmt_secs $((SECONDS - t0)))" >&2
	echo "$n" > "$log.objects"
}

# Default object counts (measured; the previous build's count is used when
# there is one).
default_objects() {
	case $1 in
	y) echo 2107 ;;
	m) echo 2133 ;;
	*) echo 0 ;;
	esac
}

build_variant() {
	local v=$1 frag key out tree log t0=$SECONDS total rel targets objs hits0 rc
	frag=$(fragment_of "$v")
	key=$(key_of "$v")
	out=$cache/kernels/$v-$key
	if [ -f "$out/.complete" ] && [ "${KVMNG_KERNEL_FORCE:-0}" != 1 ]; then
		echo "==> kernel $v: cached, inputs unchanged: $out ($(cat "$out/kernelrelease"))"
		return 0
	fi
	tree=$cache/kbuild/$v
	log=$cache/kbuild/$v.log
	mkdir -p "$cache/kbuild" "$cache/kernels"
	echo "==> kernel $v: building $(basename "$out") (log: $log)"
	rm -f "$log"
	total=$(cat "$log.objects" 2>/dev/null || true)
	# A previous count of 0 came from a silenced build: no total to trust.
	[ "${total:-0}" -gt 0 ] 2>/dev/null || total=$(default_objects "$v")
	rm -rf "$tree" "$out.tmp"
	cp -a "$src" "$tree"
	rm -f "$tree/.kvmng-headers"
	for p in "${series[@]}"; do
		patch -d "$tree" -p1 -F0 -N -s --no-backup-if-mismatch < "$p" >> "$log" 2>&1 ||
			{ tail -50 "$log"; die "$(basename "$p") failed to apply (log $log)"; }
	done
	if [ ! -d "$CCACHE_DIR" ]; then
		mkdir -p "$CCACHE_DIR"
		ccache -M 5G > /dev/null
	fi
	hits0=$(ccache --print-stats 2>/dev/null | awk '$1=="direct_cache_hit"||$1=="preprocessed_cache_hit"{h+=$2} $1=="cache_miss"{m+=$2} END{print h+0, m+0}')
	local mk=(make -C "$tree" -j"$jobs" CC="ccache gcc" HOSTCC="ccache gcc")
	{
		"${mk[@]}" x86_64_defconfig &&
			(cd "$tree" && scripts/kconfig/merge_config.sh -m .config "$common" "$frag") &&
			"${mk[@]}" olddefconfig
	} >> "$log" 2>&1 || { tail -50 "$log"; die "configuring failed (log $log)"; }
	# Every line of the fragments must have made it into the final config:
	# CONFIG_X=v as it is, "# CONFIG_X is not set" as unset.
	local want f
	for f in "$common" "$frag"; do
		while IFS= read -r want; do
			case $want in
			CONFIG_*)
				grep -qx "$want" "$tree/.config" ||
					die "$f: '$want' is not in the final .config ($(grep "^${want%%=*}=" "$tree/.config" || echo "${want%%=*} unset"))" ;;
			"# CONFIG_"*" is not set")
				want=${want#\# }
				want=${want%% *}
				! grep -q "^$want=" "$tree/.config" ||
					die "$f: '$want' should be unset but the final .config has $(grep "^$want=" "$tree/.config")" ;;
			esac
		done < "$f"
	done
	targets=(bzImage)
	[ "$v" = m ] && targets+=(modules)
	set +e
	"${mk[@]}" "${targets[@]}" 2>&1 | progress "$v" "$total" "$log"
	rc=${PIPESTATUS[0]}
	set -e
	if [ "$rc" != 0 ]; then
		echo "---- last 50 lines of $log ----" >&2
		tail -50 "$log" >&2
		die "kernel $v: make ${targets[*]} failed (exit $rc; full log $log)"
	fi
	mkdir -p "$out.tmp"
	rel=$(make -s -C "$tree" kernelrelease)
	cp "$tree/arch/x86/boot/bzImage" "$tree/System.map" "$out.tmp/"
	cp "$tree/.config" "$out.tmp/config"
	echo "$rel" > "$out.tmp/kernelrelease"
	if [ "$v" = m ]; then
		echo "  [$v] modules_install (stripped) into $out/modules"
		"${mk[@]}" INSTALL_MOD_PATH="$out.tmp/modules" INSTALL_MOD_STRIP=1 modules_install >> "$log" 2>&1 ||
			{ tail -50 "$log"; die "modules_install failed (log $log)"; }
		rm -f "$out.tmp/modules/lib/modules/$rel/build" "$out.tmp/modules/lib/modules/$rel/source"
	fi
	if [ "$v" = y ]; then
		# The KVM selftests of the patched tree (kvmng_test and the legacy
		# ones), for make vm-test.
		local st0=$SECONDS
		echo "  [$v] KVM selftests of the patched tree (make headers; make -C tools/testing/selftests/kvm)"
		{
			make -C "$tree" -j"$jobs" headers &&
				make -C "$tree/tools/testing/selftests/kvm" -j"$jobs" OUTPUT="$out.tmp/selftests"
		} >> "$log" 2>&1 || { tail -50 "$log"; die "building the KVM selftests failed (log $log)"; }
		find "$out.tmp/selftests" \( -name '*.o' -o -name '*.d' \) -delete
		mkdir -p "$out.tmp/selftests-src/tools/testing/selftests/kvm"
		cp "$tree/tools/testing/selftests/kvm/Makefile" "$out.tmp/selftests-src/tools/testing/selftests/kvm/"
		echo "  [$v] selftests built in $((SECONDS - st0)) s"
		# The series with CONFIG_KVMNG=n: KVM's objects (arch/x86/kvm,
		# which builds virt/kvm too) must compile without a warning, so
		# that what the series adds for kvmng outside an #ifdef, or
		# declares inside one, is caught (-Wmissing-prototypes is on
		# since 6.8; WERROR makes it fatal, and i386 has no KVMNG).
		# Last, as it reconfigures the tree the results came from.
		st0=$SECONDS
		echo "  [$v] KVM's objects with CONFIG_KVMNG=n, warnings as errors"
		{
			(cd "$tree" && scripts/config -d KVMNG) &&
				"${mk[@]}" olddefconfig &&
				! grep -q '^CONFIG_KVMNG=' "$tree/.config" &&
				"${mk[@]}" KCFLAGS=-Werror arch/x86/kvm/
		} >> "$log" 2>&1 || { tail -30 "$log"; die "KVM with CONFIG_KVMNG=n does not build cleanly (log $log)"; }
		echo "  [$v] KVM with CONFIG_KVMNG=n built in $((SECONDS - st0)) s, no warning"
	fi
	objs=$(cat "$log.objects" 2>/dev/null || echo 0)
	local hits1
	hits1=$(ccache --print-stats 2>/dev/null | awk '$1=="direct_cache_hit"||$1=="preprocessed_cache_hit"{h+=$2} $1=="cache_miss"{m+=$2} END{print h+0, m+0}')
	local h m
	read -r h m <<< "$(echo "$hits0 $hits1" | awk '{print $3-$1, $4-$2}')"
	gzip -c "$log" > "$out.tmp/build.log.gz"
	cat > "$out.tmp/build.json" <<-EOF
	{"variant":"$v","key":"$key","kernelrelease":"$rel","seconds":$((SECONDS - t0)),"objects":$objs,"ccache_hits":$h,"ccache_misses":$m,"jobs":$jobs,"built":"$(date -u +%FT%TZ)"}
	EOF
	touch "$out.tmp/.complete"
	rm -rf "$out"
	mv "$out.tmp" "$out"
	# Keep the three newest cache entries of this variant.
	ls -1dt "$cache/kernels/$v-"* 2>/dev/null | tail -n +4 | xargs -r rm -rf
	echo "==> kernel $v: built in $(fmt_secs $((SECONDS - t0))) ($objs objects, ccache $h hits / $m misses): $out ($rel)"
}

# ---- each patch builds on its own ------------------------------------------
# One tree, the series applied patch by patch, the variant's config merged
# again after each (the Kconfig symbols appear with patch 0002) and
# `make bzImage` (and modules for m) run after each; a patch that touches
# tools/testing/selftests also gets `make headers` and the KVM selftests.
# For y, a patch that touches the ABI or its implementation (each_tests)
# is booted (boot-test.sh) and every kvmng selftest built so far runs in
# it: a test that fails between two patches fails the patch.
# After each patch that has kvmng_ioregion (0010 on: it needs sockets, and
# KVM would not link without them) the variant's config with CONFIG_NET=n
# must not enable CONFIG_KVMNG; before it kvmng needs no NET.
# Writes $cache/kbuild/each-V.tsv: patch, result, seconds, objects compiled,
# what was built (and the tests' outcome).
# Whether patch $1 touches the kvmng ABI or what implements it.
touches_kvmng() {
	grep -q -E '^diff --git a/(include/uapi/linux/kvmng\.h|include/linux/kvmng\.h|kernel/kvmng\.c|virt/kvm/|arch/x86/kvm/|arch/x86/entry/syscalls/|tools/testing/selftests/kvm/x86_64/kvmng)' "$1"
}

# each_tests TREE LOG: boots TREE's bzImage and runs the kvmng selftests
# built in TREE/.each-selftests; 0 if every one passed (or none is built).
# Prints what ran.
each_tests() {
	local tree=$1 log=$2 t script out names="" st
	for t in "$tree"/.each-selftests/x86_64/kvmng_*test; do
		[ -x "$t" ] && names="$names $(basename "$t")"
	done
	if [ -z "$names" ]; then
		echo "no kvmng selftest yet"
		return 0
	fi
	# The guest mounts a tmpfs on /tmp: the script lives in the cache.
	script=$cache/kbuild/each-tests.sh
	{
		echo '#!/bin/sh'
		echo 'rc=0'
		for t in $names; do
			echo "$tree/.each-selftests/x86_64/$t > /dev/null 2>&1; s=\$?; echo \"EACH-TEST: $t \$s\"; [ \$s = 0 ] || rc=1"
		done
		echo 'exit $rc'
	} > "$script"
	chmod +x "$script"
	out=$(BOOT_TIMEOUT=900 "$here/boot-test.sh" "$tree/arch/x86/boot/bzImage" "$script" 2>&1 | tr -d '\r') || true
	printf '%s\n' "$out" >> "$log"
	st=$(printf '%s\n' "$out" | sed -n 's/^KVMNG-GUEST: exit status \([0-9]*\).*/\1/p' | tail -1)
	# (a kernel message may follow on the same console line)
	printf '%s\n' "$out" | sed -n 's/^EACH-TEST: \([^ ]*\) \([0-9]*\).*/\1=\2/p' | tr '\n' ' '
	[ "$st" = 0 ]
}

# net_off_check TREE: TREE's config with CONFIG_NET=n (olddefconfig into
# a copy) leaves CONFIG_KVMNG off; prints what it found.
net_off_check() {
	local tree=$1 cfg
	cfg=$(mktemp)
	cp "$tree/.config" "$cfg"
	"$tree/scripts/config" --file "$cfg" -d NET
	make -s -C "$tree" KCONFIG_CONFIG="$cfg" olddefconfig > /dev/null 2>&1 || { rm -f "$cfg"; echo "olddefconfig failed"; return 1; }
	if grep -q '^CONFIG_KVMNG=y' "$cfg"; then
		rm -f "$cfg"
		echo "NET=n still enables CONFIG_KVMNG"
		return 1
	fi
	rm -f "$cfg"
	echo "NET=n: no KVMNG"
}

build_each() {
	local v=$1 frag tree log tsv i p name t0 rc objs what total=0 failed=0 t_all=$SECONDS
	frag=$(fragment_of "$v")
	tree=$cache/kbuild/each-$v
	log=$cache/kbuild/each-$v.log
	tsv=$cache/kbuild/each-$v.tsv
	mkdir -p "$cache/kbuild"
	[ -d "$CCACHE_DIR" ] || { mkdir -p "$CCACHE_DIR"; ccache -M 5G > /dev/null; }
	echo "==> each patch builds on its own: variant $v, tree $tree (log $log)"
	rm -rf "$tree"
	cp -a "$src" "$tree"
	: > "$log"
	printf 'patch\tresult\tseconds\tobjects\tbuilt\n' > "$tsv"
	local mk=(make -C "$tree" -j"$jobs" CC="ccache gcc" HOSTCC="ccache gcc")
	"${mk[@]}" x86_64_defconfig >> "$log" 2>&1 || die "x86_64_defconfig failed (log $log)"
	i=0
	for p in "${series[@]}"; do
		i=$((i + 1))
		name=$(basename "$p" .patch)
		t0=$SECONDS
		echo "---- $name" >> "$log"
		patch -d "$tree" -p1 -F0 -N -s --no-backup-if-mismatch < "$p" >> "$log" 2>&1 ||
			die "$name does not apply (log $log)"
		what="bzImage"
		[ "$v" = m ] && what="bzImage modules"
		rc=0
		{
			(cd "$tree" && scripts/kconfig/merge_config.sh -m .config "$common" "$frag") &&
				"${mk[@]}" olddefconfig &&
				"${mk[@]}" $what
		} > "$log.part" 2>&1 || rc=$?
		if [ $rc = 0 ] && grep -q '^diff --git a/tools/testing/selftests/' "$p"; then
			what="$what + kvm selftests"
			{
				"${mk[@]}" headers &&
					make -C "$tree/tools/testing/selftests/kvm" -j"$jobs" OUTPUT="$tree/.each-selftests"
			} >> "$log.part" 2>&1 || rc=$?
		fi
		objs=$(grep -c -E '^  (CC|AS)( \[M\])? ' "$log.part" || true)
		cat "$log.part" >> "$log"
		rm -f "$log.part"
		if [ $rc = 0 ] && [ -f "$tree/virt/kvm/kvmng_ioregion.c" ] &&
			grep -q '^CONFIG_KVMNG=y' "$tree/.config"; then
			local net
			if net=$(net_off_check "$tree"); then
				what="$what; $net"
			else
				what="$what; $net"
				rc=1
			fi
		fi
		if [ $rc = 0 ] && [ "$v" = y ] && [ "${KVMNG_EACH_TESTS:-1}" != 0 ] && touches_kvmng "$p"; then
			local res
			if res=$(each_tests "$tree" "$log"); then
				what="$what; tests: ${res% }"
			else
				what="$what; tests FAILED: ${res% }"
				rc=1
			fi
		fi
		if [ $rc = 0 ]; then
			printf '%s\t%s\t%s\t%s\t%s\n' "$name" PASS $((SECONDS - t0)) "$objs" "$what" >> "$tsv"
			printf '  [%2d/%d] %-62s PASS %6s %5s objects (%s)\n' "$i" "${#series[@]}" "$name" "$(fmt_secs $((SECONDS - t0)))" "$objs" "$what"
		else
			printf '%s\t%s\t%s\t%s\t%s\n' "$name" FAIL $((SECONDS - t0)) "$objs" "$what" >> "$tsv"
			printf '  [%2d/%d] %-62s FAIL %6s (exit %s; log %s)\n' "$i" "${#series[@]}" "$name" "$(fmt_secs $((SECONDS - t0)))" "$rc" "$log"
			grep -E 'error:|Error [0-9]' "$log" | tail -5 >&2 || true
			failed=$((failed + 1))
		fi
		total=$((total + objs))
	done
	echo "==> each patch: ${#series[@]} patches, $failed failed, $total objects compiled, $(fmt_secs $((SECONDS - t_all))) (results $tsv)"
	[ $failed = 0 ]
}

case ${1:-} in
--each)
	[ $# -le 2 ] || die "usage: kernel.sh --each [VARIANT]"
	v=${2:-y}
	fragment_of "$v" > /dev/null
	command -v ccache > /dev/null || die "ccache is missing (apt-get install ccache)"
	echo "==> kvmng series: checks"
	check_series
	build_each "$v"
	exit $?
	;;
--dir)
	[ $# = 2 ] || die "usage: kernel.sh --dir VARIANT"
	fragment_of "$2" > /dev/null
	dir_of "$2"
	exit 0
	;;
--check)
	echo "==> kvmng series: checks"
	check_series
	exit 0
	;;
-h | --help)
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
esac

variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(y m)
for v in "${variants[@]}"; do fragment_of "$v" > /dev/null; done
command -v ccache > /dev/null || die "ccache is missing (apt-get install ccache)"
t_all=$SECONDS
echo "==> kvmng series: checks"
check_series
for v in "${variants[@]}"; do
	build_variant "$v"
done
echo "==> make kernel done in $(fmt_secs $((SECONDS - t_all)))"
