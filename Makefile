# kvmng — entry points. `make demo` runs the main job, `make test` every test.
# Each target installs what it needs (Debian packages via apt-get as root).

SHELL := /bin/bash
.DEFAULT_GOAL := help

KVMNG_CACHE ?= $(HOME)/.cache/kvmng
LINUX_VERSION := 6.12
LINUX_TARBALL := /usr/src/linux-source-$(LINUX_VERSION).tar.xz
KVMNG_LINUX_SRC ?= $(KVMNG_CACHE)/linux-source-$(LINUX_VERSION)
export KVMNG_LINUX_SRC

CARGO ?= cargo
# Debian packages the project needs, by the command or file that proves them.
DEB_PACKAGES := gcc binutils make xz-utils linux-source-$(LINUX_VERSION) rsync qemu-system-x86
# make kernel, make vm-test: the kernel build, the series checks, the VM.
DEB_PACKAGES += flex bison bc libelf-dev libssl-dev cpio kmod patch perl git ccache busybox-static jq

.PHONY: help deps demo-deps linux-source build demo check test fmt-check clippy unit-tests loom clean

help:
	@echo "kvmng: KVM driven by system calls"
	@echo "  make demo    unmodified QEMU running a guest through libkvmshim.so, its census, the A/B of syscall vs ioctl"
	@echo "  make test    every test: fmt, clippy, Rust tests on /dev/kvm, the loom model, conformance, fuzz, stress and SMP smokes,"
	@echo "               selftests and QEMU through the shim, the kernel series built and booted (KVMNG_TEST_KERNEL=0 skips it)"
	@echo "  make check   the quick subset of make test (no dependency installation)"
	@echo "  make loom    the loom model of the shim's I/O-region reply hand-over (part of make check)"
	@echo "  make conformance-test   the C conformance suite of the syscalls, through the shim"
	@echo "  make kernel  check the patch series and build the kvmng kernels (KVM=y and KVM=m; cached)"
	@echo "  make vm-test boot them under QEMU TCG and run the tests inside (make vm-test-full: every selftest)"
	@echo "  make compat  the selftests and QEMU natively and through the shim (make compat-doc: into docs/compat.md)"
	@echo "  make bench   every operation through every path on this host: docs/bench.md"
	@echo "  make vm-bench  instruction counts ioctl vs syscall in the patched kernel under QEMU -icount"
	@echo "  make vm-trace OP=.. IOCTL=.. SYSCALL=..  one call of each path stepped in that kernel: instructions per function"
	@echo "  make install [PREFIX=/usr/local]   header, libkvmshim.so, kvmng, kvmshim.pc"
	@echo "  make fuzz | soak | vm-stress   1M differential fuzz executions | 5-minute soak | debug kernel stress"
	@echo "  make smp-smoke  an SMP VMM in miniature (2 and 4 vCPU threads, irqchip, slot changes, pauses)"
	@echo "               natively, through the shim (with and without a census) and in passthrough: same summary, wall times in target/smp-smoke"
	@echo "  make vm-fuzz  the kernel's kvmng syscalls against the emulation, 1M executions in the TCG guest"

# Installs the Debian packages $(1) that are missing (as root), or names
# them and stops.
define apt_install
	@missing=""; \
	for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "error: missing Debian packages:$$missing"; \
	    echo "       install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
endef

# Everything the project needs: packages, cargo, cargo-nextest.
deps:
	$(call apt_install,$(DEB_PACKAGES))
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust with rustup (https://rustup.rs), then rerun"; exit 1; }
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "==> installing cargo-nextest (cargo install cargo-nextest --locked)"; $(CARGO) install -q cargo-nextest --locked; }

# What `make demo` needs, and nothing more.
demo-deps:
	$(call apt_install,$(DEMO_PACKAGES))
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust with rustup (https://rustup.rs), then rerun"; exit 1; }

# The Linux 6.12 tree from Debian's linux-source package, with its uapi headers.
linux-source: deps $(KVMNG_LINUX_SRC)/.kvmng-headers

$(KVMNG_LINUX_SRC)/.kvmng-headers:
	@echo "==> extracting $(LINUX_TARBALL) into $(KVMNG_CACHE)"
	@mkdir -p $(KVMNG_CACHE)
	@rm -rf $(KVMNG_LINUX_SRC).tmp && mkdir -p $(KVMNG_LINUX_SRC).tmp
	@tar -xf $(LINUX_TARBALL) -C $(KVMNG_LINUX_SRC).tmp
	@rm -rf $(KVMNG_LINUX_SRC) && mv $(KVMNG_LINUX_SRC).tmp/linux-source-$(LINUX_VERSION) $(KVMNG_LINUX_SRC)
	@rmdir $(KVMNG_LINUX_SRC).tmp
	@echo "==> make headers (Linux $(LINUX_VERSION) uapi)"
	@$(MAKE) -s -C $(KVMNG_LINUX_SRC) headers >/dev/null
	@touch $@

build: deps
	$(CARGO) build --workspace --release

# `make demo`: Debian's unmodified qemu-system-x86_64 boots our SMP guest
# (compat-tests/qemu/smp.S, 2 vCPUs) through libkvmshim.so, then the
# shim's census of the run and the committed A/B of syscall against ioctl
# (docs/bench/*.json). It installs only what it needs: QEMU and the
# assembler, not the kernel toolchain or linux-source.
DEMO_PACKAGES := gcc binutils qemu-system-x86
DEMO_GUEST := build/demo/smp.elf

$(DEMO_GUEST): compat-tests/qemu/smp.S compat-tests/qemu/serial.inc
	@mkdir -p $(@D)
	@gcc -m32 -c -nostdinc -o $(@D)/smp.o $<
	@ld -m elf_i386 -nostdlib -Ttext-segment=0x100000 -e _start --build-id=none -z noexecstack \
	  -z noseparate-code -z max-page-size=0x1000 -o $@ $(@D)/smp.o

demo: demo-deps
	@$(MAKE) --no-print-directory $(DEMO_GUEST)
	@echo "==> building kvmng and libkvmshim.so (release)"
	@$(CARGO) build -q --release -p kvmng-cli -p kvmshim
	@./target/release/kvmng demo --guest $(DEMO_GUEST) --results docs/bench

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# Tests that need /dev/kvm live in test binaries named kvm_*. Without a
# usable /dev/kvm they are not run: the count is printed as skipped, loudly.
KVM_TESTS := -E 'binary(/^kvm_/)'
unit-tests:
	@if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then \
	  $(CARGO) nextest run --workspace --no-fail-fast; \
	else \
	  skipped=$$($(CARGO) nextest list --workspace $(KVM_TESTS) --message-format oneline 2>/dev/null | wc -l); \
	  echo "!!! /dev/kvm is missing or not read-write for $$(id -un): $$skipped tests that need it are SKIPPED"; \
	  $(CARGO) nextest run --workspace --no-fail-fast -E 'not binary(/^kvm_/)' && \
	  echo "kvm: 0 passed, 0 failed, $$skipped skipped"; \
	fi

# The loom model of the I/O-region reply hand-over between vCPU threads
# (shim/kvmng/tests/loom_handover.rs; docs/reliability.md section 3): every
# interleaving of 2-3 vCPU threads and a device up to a preemption bound.
# Its own target dir, as `--cfg loom` rebuilds everything: the first build
# takes about 1 min here, the checks 50 s at a load of 3.6 on the 2 cores
# (the ten tests explore 176 to 103 805 executions each).
loom:
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(CARGO) test --release -p kvmng --test loom_handover

check: fmt-check clippy unit-tests loom

# `make test` leaves the tree as it found it: its reports go under target/
# (updating the committed ones is `make compat-doc`, `make bench`, ...), and
# its last step fails if `git status --porcelain` changed.
TREE_BEFORE := target/tree-before-test.txt

test: deps linux-source
	@mkdir -p target && (git status --porcelain 2>/dev/null || true) > $(TREE_BEFORE)
	@$(MAKE) -s check
	@echo "==> the C conformance suite through libkvmshim.so"
	@$(MAKE) -s conformance-test
	@echo "==> the outsider's suite, written from docs/api.md alone, through libkvmshim.so"
	@$(MAKE) -s spec-outsider-test
	@echo "==> make fuzz-smoke: the shim against raw ioctls on identical VMs (regressions + 100 000 executions), the differential cases through the trap"
	@$(MAKE) -s fuzz-smoke
	@echo "==> make stress-smoke: max vCPUs, state hammering, signals in KVM_RUN, through the shim and the trap"
	@$(MAKE) -s stress-smoke
	@echo "==> make smp-smoke: an SMP VMM (vCPU threads masked as QEMU masks them) natively, through the shim, in passthrough"
	@$(MAKE) -s smp-smoke
	@echo "==> make compat: the 6.12 selftests and QEMU, natively and through the shim"
	@$(MAKE) -s compat
	@if [ "$(KVMNG_TEST_KERNEL)" = 0 ]; then \
	  echo "!!! make kernel and make vm-test SKIPPED (KVMNG_TEST_KERNEL=0): the patch series was not built or booted"; \
	else \
	  echo "==> make kernel: the series checks and both kernels (cached by the hash of series and config)" && \
	  $(MAKE) -s kernel && \
	  echo "==> make vm-test: the kernels booted under QEMU TCG, the tests inside" && \
	  $(MAKE) -s vm-test; \
	fi
	@(git status --porcelain 2>/dev/null || true) | diff -u $(TREE_BEFORE) - > target/tree-after-test.diff || \
	  { echo "!!! make test changed the tree (git status before/after):"; cat target/tree-after-test.diff; exit 1; }
	@echo "==> the tree is as make test found it (git status unchanged)"

clean:
	$(CARGO) clean

# ---- The C conformance suite of the syscalls, and install ----
# `make conformance` builds build/conformance/conformance from
# compat-tests/conformance/*.c against the uapi header; `make
# conformance-test` runs it with libkvmshim.so preloaded (on a stock kernel
# the shim traps the kvmng syscalls and emulates them; on a kvmng kernel it
# installs nothing and the calls are native). `make install` installs the
# header, the shim, the CLI and kvmshim.pc under $(DESTDIR)$(PREFIX).
CC ?= cc
CONF_DIR := compat-tests/conformance
CONF_OUT := build/conformance
CONF_GUESTS := real_pio real_mmio pio_loop
CONF_CFLAGS := -O2 -g -Wall -Wextra -std=gnu11 -Ikernel-patch/include/uapi -I$(CONF_DIR)
CONF_SRCS := $(wildcard $(CONF_DIR)/*.c)
CONF_HDRS := $(wildcard $(CONF_DIR)/*.h) kernel-patch/include/uapi/linux/kvmng.h

.PHONY: conformance conformance-test install

conformance: $(CONF_OUT)/conformance

$(CONF_OUT)/guests/%.bin: shim/kvmng-guests/asm/%.S shim/kvmng-guests/asm/conventions.inc
	@mkdir -p $(@D)
	gcc -c -nostdinc -Ishim/kvmng-guests/asm -o $(@D)/$*.o $<
	ld -m elf_x86_64 -nostdlib -Ttext=0x1000 -e _start --build-id=none -z noexecstack -o $(@D)/$*.elf $(@D)/$*.o
	objcopy -O binary -j .text $(@D)/$*.elf $@

$(CONF_OUT)/guests.o: $(CONF_DIR)/guests.S $(CONF_GUESTS:%=$(CONF_OUT)/guests/%.bin)
	$(CC) -c -Wa,-I,$(CONF_OUT)/guests -o $@ $<

$(CONF_OUT)/conformance: $(CONF_SRCS) $(CONF_HDRS) $(CONF_OUT)/guests.o
	$(CC) $(CONF_CFLAGS) -o $@ $(CONF_SRCS) $(CONF_OUT)/guests.o -lpthread

conformance-test: conformance
	$(CARGO) build -q --release -p kvmshim
	LD_PRELOAD=$(CURDIR)/target/release/libkvmshim.so $(CONF_OUT)/conformance

# The outsider's suite (compat-tests/spec-outsider): written from the spec
# alone; its emulation checks (api.md section 6) assume the trap, so it
# runs through libkvmshim.so on a stock kernel.
SPEC_OUTSIDER := build/spec-outsider
$(SPEC_OUTSIDER): compat-tests/spec-outsider/spec_tests.c $(CONF_HDRS) | $(KVMNG_LINUX_SRC)/.kvmng-headers
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -std=gnu11 -Ikernel-patch/include/uapi -I$(CONF_DIR) \
	  -I$(KVMNG_LINUX_SRC)/usr/include -o $@ $< -lpthread

.PHONY: spec-outsider spec-outsider-test
spec-outsider: $(SPEC_OUTSIDER)

spec-outsider-test: $(SPEC_OUTSIDER)
	$(CARGO) build -q --release -p kvmshim
	LD_PRELOAD=$(CURDIR)/target/release/libkvmshim.so $(SPEC_OUTSIDER)

PREFIX ?= /usr/local
DESTDIR ?=
KVMNG_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

install:
	$(CARGO) build -q --release -p kvmshim -p kvmng-cli
	install -D -m 644 kernel-patch/include/uapi/linux/kvmng.h $(DESTDIR)$(PREFIX)/include/linux/kvmng.h
	install -D -m 644 $(CONF_DIR)/kvmng_syscalls.h $(DESTDIR)$(PREFIX)/include/kvmng_syscalls.h
	install -D -m 755 target/release/libkvmshim.so $(DESTDIR)$(PREFIX)/lib/libkvmshim.so
	install -D -m 755 target/release/kvmng $(DESTDIR)$(PREFIX)/bin/kvmng
	@mkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(KVMNG_VERSION)|g' \
	  $(CONF_DIR)/kvmshim.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/kvmshim.pc

# ---- Compatibility: the KVM selftests and QEMU under the shim ----
# `make compat`: the Linux 6.12 KVM selftests of compat-tests/selftests/
# quick.list, each natively and under libkvmshim.so (KVMNG_MODE=auto and
# passthrough), then unmodified QEMU 7.2 (Debian 12's) and 10.0 (its
# backports) on SeaBIOS, our devices guest and our SMP guest with -smp 1/2/4/8
# on pc, q35 and microvm, and libkrun booting the SMP guest on 2, 4 and 8 vCPUs,
# natively and under the shim; fails when the shim changes an outcome or an
# output, and writes its report to target/kvmng-compat/compat.md. About 8-12
# minutes here. `make compat-doc`: the same, then the result line and
# tables of each section (not the run's log) into docs/compat.md, the
# committed results (`kvmng-compat brief`).
# `make compat-full`: every x86_64 selftest (hardware_disable_test and
# rseq_test add several minutes per mode). See docs/compat.md.
COMPAT := target/release/kvmng-compat
COMPAT_TIMEOUT ?= 120
COMPAT_FULL_TIMEOUT ?= 600
COMPAT_JOBS ?= 1
COMPAT_REPORT ?= target/kvmng-compat/compat.md
# The QEMU scenarios run with Debian 12's QEMU 7.2 (the system's) and with
# the newest QEMU Debian 12 can install, 10.0 from bookworm-backports,
# unpacked into the cache beside it (compat-tests/qemu/install-qemu-backports.sh).
QEMU_BACKPORTS_DIR ?= $(KVMNG_CACHE)/qemu-backports
QEMU_BACKPORTS := $(QEMU_BACKPORTS_DIR)/usr/bin/qemu-system-x86_64
COMPAT_QEMUS ?= qemu-system-x86_64 $(QEMU_BACKPORTS)
# The second real VMM: libkrun from crates.io (a VMM library on rust-vmm's
# kvm-ioctls), driven by compat-tests/kvmng-krun's launcher; built on its own so
# the workspace does not carry libkrun's dependency tree. Its target
# directory is in the cache: libkrun and its dependencies do not change with
# the project, and build for minutes, so a fresh clone reuses them (cargo
# rebuilds the launcher itself when its source differs).
KRUN_TARGET ?= $(KVMNG_CACHE)/krun-target
KRUN := $(KRUN_TARGET)/release/kvmng-krun

.PHONY: compat compat-full compat-build qemu-backports krun compat-doc

compat-build: deps linux-source qemu-backports krun
	$(CARGO) build -q --release -p kvmshim -p kvmng-compat

krun: deps
	$(CARGO) build -q --release --locked --manifest-path compat-tests/kvmng-krun/Cargo.toml --target-dir $(KRUN_TARGET)

qemu-backports: deps $(QEMU_BACKPORTS)

$(QEMU_BACKPORTS):
	@compat-tests/qemu/install-qemu-backports.sh $(QEMU_BACKPORTS_DIR) $(KVMNG_CACHE)

compat: compat-build
	@mkdir -p target/kvmng-compat; rc=0; \
	$(COMPAT) selftests --mode auto --mode passthrough --timeout $(COMPAT_TIMEOUT) --jobs $(COMPAT_JOBS) \
	  --report $(COMPAT_REPORT) --json target/kvmng-compat/selftests.json || rc=1; \
	$(COMPAT) qemu --mode auto --mode passthrough $(addprefix --qemu ,$(COMPAT_QEMUS)) --krun $(KRUN) --report $(COMPAT_REPORT) \
	  --json target/kvmng-compat/qemu.json || rc=1; \
	exit $$rc

compat-doc:
	@rc=0; $(MAKE) --no-print-directory compat || rc=$$?; \
	$(COMPAT) brief --from $(COMPAT_REPORT) --into docs/compat.md || exit 1; exit $$rc

compat-full: compat-build
	@mkdir -p target/kvmng-compat; rc=0; \
	$(COMPAT) selftests --all --mode auto --mode passthrough --timeout $(COMPAT_FULL_TIMEOUT) --jobs $(COMPAT_JOBS) \
	  --report $(COMPAT_REPORT) --section "kvmng-compat selftests full" --json target/kvmng-compat/selftests-full.json || rc=1; \
	$(COMPAT) qemu --mode auto --mode passthrough $(addprefix --qemu ,$(COMPAT_QEMUS)) --krun $(KRUN) --report $(COMPAT_REPORT) \
	  --json target/kvmng-compat/qemu.json || rc=1; \
	exit $$rc

# ---- Measurement (shim/kvmng-bench): `make bench` regenerates docs/bench.md ----
# `kvmng ab` runs one KVM selftest alternately without and with translation
# (the shim's passthrough and auto modes; passthrough and syscall on a
# kvmng kernel); `kvmng bench` measures every operation through every path
# this machine has (raw ioctl, the library's legacy backend, the shim, the
# trap, the native syscall), writes docs/bench/bench.json and the SVG
# charts, and writes docs/bench.md with the A/B result and the in-guest
# instruction counts (docs/bench/vm-bench.json, from `make vm-bench`) in
# it. Measurements, not tests: nothing fails on a figure.
# `make vm-bench`: boots the y kernel of `make kernel` (the newest built one,
# with a warning, when the current series is not built) under QEMU TCG with
# -icount shift=0 and runs `kvmng bench --instructions` in it twice:
# instruction counts per operation and path, deterministic; writes
# docs/bench/vm-bench.json (kernel-patch/vm-test/bench.sh). Here make bench
# takes about 2 minutes, make vm-bench 2 to 5 (TCG speed follows the load).
BENCH_ITERS ?= 10000
BENCH_ROUNDS ?= 50
BENCH_AB_RUNS ?= 20
SELFTESTS_BUILD ?= $(KVMNG_CACHE)/selftests-build
BENCH_AB_ARGS ?= -b 64M -v 2

.PHONY: bench
bench: deps linux-source
	$(CARGO) build -q --release -p kvmshim -p kvmng-cli
	@if [ ! -x $(SELFTESTS_BUILD)/demand_paging_test ]; then \
	  echo "==> building the KVM selftests into $(SELFTESTS_BUILD)"; \
	  mkdir -p $(SELFTESTS_BUILD) && \
	  $(MAKE) -C $(KVMNG_LINUX_SRC)/tools/testing/selftests/kvm OUTPUT=$(SELFTESTS_BUILD) -j2 \
	    > $(SELFTESTS_BUILD)/kvmng-build.log 2>&1 || { tail -25 $(SELFTESTS_BUILD)/kvmng-build.log; exit 1; }; \
	fi
	@mkdir -p docs/bench
	@rm -f docs/bench/ab.json
	-./target/release/kvmng ab --runs $(BENCH_AB_RUNS) --json docs/bench/ab.json -- $(SELFTESTS_BUILD)/demand_paging_test $(BENCH_AB_ARGS)
	./target/release/kvmng bench --iters $(BENCH_ITERS) --rounds $(BENCH_ROUNDS) \
	  --json docs/bench/bench.json --svg-dir docs/bench --markdown docs/bench.md \
	  $$([ -f docs/bench/ab.json ] && echo --ab-json docs/bench/ab.json) \
	  $$([ -f docs/bench/vm-bench.json ] && echo --vm-bench-json docs/bench/vm-bench.json)

.PHONY: vm-bench
vm-bench: deps
	$(CARGO) build -q --release -p kvmshim -p kvmng-cli
	@kernel-patch/vm-test/bench.sh --out docs/bench/vm-bench.json
	@$(MAKE) --no-print-directory bench-doc

# Where one call's instructions go, kernel function by kernel function, on
# the ioctl and the native path (kernel-patch/vm-test/trace.sh; docs/bench.md,
# "Where the native path's instructions go"), e.g.
#   make vm-trace OP=state-get-2 IOCTL=0x8004ae98 SYSCALL=kvmng_vcpu_state
.PHONY: vm-trace
vm-trace: deps
	$(call apt_install,gdb)
	@[ -n "$(OP)" ] && [ -n "$(IOCTL)" ] && [ -n "$(SYSCALL)" ] || { echo "error: vm-trace needs OP, IOCTL and SYSCALL, e.g. make vm-trace OP=state-get-2 IOCTL=0x8004ae98 SYSCALL=kvmng_vcpu_state"; exit 1; }
	$(CARGO) build -q --release -p kvmshim -p kvmng-cli
	@kernel-patch/vm-test/trace.sh "$(OP)" "$(IOCTL)" "$(SYSCALL)" "$(COND)"

# docs/bench.md and its charts again from the stored results (host:
# docs/bench/bench.json, ab.json; guest: vm-bench.json), measuring nothing.
.PHONY: bench-doc
bench-doc:
	$(CARGO) build -q --release -p kvmng-cli
	./target/release/kvmng bench --from-json docs/bench/bench.json --svg-dir docs/bench --markdown docs/bench.md \
	  $$([ -f docs/bench/ab.json ] && echo --ab-json docs/bench/ab.json) \
	  $$([ -f docs/bench/vm-bench.json ] && echo --vm-bench-json docs/bench/vm-bench.json) > /dev/null
	@echo "==> docs/bench.md written from docs/bench/{bench,ab,vm-bench}.json"

# ---- The kernel series: build, and the tests inside the booted kernels ----
# `make kernel`: checks the series (each patch applies in order with git am
# and patch -p1; checkpatch.pl --strict clean), then builds Debian's
# linux-source-6.12 + the series in two variants, y (KVM built in) and m
# (KVM as modules), with ccache; results are cached by the hash of their
# inputs in $(KVMNG_CACHE)/kernels (unchanged inputs: seconds). About 25-35
# minutes cold for both here, seconds warm.
# `make vm-test`: boots each under QEMU TCG (-cpu max: nested SVM) and runs
# kvmng_test, the C conformance suite natively, the selftests of
# kernel-patch/vm-test/selftests.list natively and under the shim
# (KVMNG_MODE=syscall), and Debian's QEMU under the shim booting a nested
# Linux; prints a table per variant. `make vm-test-full`: every selftest.
# See docs/kernel.md.
KERNEL_VARIANTS ?= y m

.PHONY: kernel vm-test vm-test-full vm-test-build

kernel: deps linux-source
	@kernel-patch/scripts/kernel.sh $(KERNEL_VARIANTS)

vm-test-build: deps
	$(CARGO) build -q --release -p kvmshim -p kvmng-cli -p kvmng-compat -p kvmng-fuzz
	@$(MAKE) -s conformance

vm-test: kernel vm-test-build krun qemu-backports
	@kernel-patch/vm-test/vm-test.sh $(KERNEL_VARIANTS)

vm-test-full: kernel vm-test-build krun qemu-backports
	@kernel-patch/vm-test/vm-test.sh --full $(KERNEL_VARIANTS)

# ---- Robustness: fuzzing, stress, soak. See docs/reliability.md ----
# `make fuzz`: kvmng-fuzz drives /dev/kvm, VM and vCPU fds with the mapping
# table's requests and random ones, with integers, buffers, buffers running
# into an unmapped page and bad pointers, through libkvmshim.so's
# translation on one VM and the raw ioctl on an identical one, and fails on
# any difference of return value, errno or output bytes, on a crash or a
# hang; it prints the executions and the time, then the census of the
# shim's paths. `make fuzz-smoke` (< 30 s): the regression cases and 100000
# executions, and the differential mode's regression cases with the legacy
# backend on both sides and through the trap (the native backend's
# syscalls trapped and emulated by libkvmshim.so). `make stress-smoke`
# (< 60 s): kvmng-stress through the shim (the ioctl scenarios) and
# through the trap (the syscall scenarios).
# `make soak` (SOAK_SECONDS, default 300): both in a loop, fd count and RSS
# sampled and required flat. `make vm-stress`: the debug kernel (KASAN,
# lockdep, kmemleak) and the m kernel under QEMU TCG, kvmng-stress and (on
# debug) the kvmng selftests natively, splats and leaks counted
# (kernel-patch/vm-test/stress.sh).
SHIM_LIB := $(CURDIR)/target/release/libkvmshim.so
FUZZ := target/release/kvmng-fuzz
FUZZ_EXECS ?= 1000000
FUZZ_SEED ?= 1
FUZZ_JOBS ?= 1
FUZZ_CENSUS := target/kvmng-fuzz.census
STRESS := build/stress/kvmng-stress
STRESS_SRCS := $(wildcard compat-tests/stress/*.c) $(wildcard compat-tests/stress/*.h)
SOAK_SECONDS ?= 300

.PHONY: fuzz fuzz-smoke fuzz-build stress stress-smoke soak vm-stress vm-fuzz

fuzz-build:
	$(CARGO) build -q --release -p kvmshim -p kvmng-fuzz

fuzz: fuzz-build
	LD_PRELOAD=$(SHIM_LIB) $(FUZZ) --regressions
	@rm -f $(FUZZ_CENSUS)
	KVMNG_STATS=$(CURDIR)/$(FUZZ_CENSUS) LD_PRELOAD=$(SHIM_LIB) $(FUZZ) --execs $(FUZZ_EXECS) --seed $(FUZZ_SEED) --jobs $(FUZZ_JOBS)
	@[ ! -s $(FUZZ_CENSUS) ] || jq -rs '[.[].commands[]] | "census of the shim side: \(map(.count)|add) KVM ioctls, \(map(.translated)|add) translated, \(map(.fallback)|add) fell back (documented reasons)"' $(FUZZ_CENSUS)

fuzz-smoke: fuzz-build
	LD_PRELOAD=$(SHIM_LIB) $(FUZZ) --regressions
	$(FUZZ) --differential --sides legacy,legacy --regressions
	LD_PRELOAD=$(SHIM_LIB) $(FUZZ) --differential --regressions
	LD_PRELOAD=$(SHIM_LIB) $(FUZZ) --execs 100000 --seconds 40 --seed $$(date +%s)

stress: $(STRESS)

$(STRESS): $(STRESS_SRCS) $(CONF_DIR)/kvmng_syscalls.h kernel-patch/include/uapi/linux/kvmng.h
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -std=gnu11 -Ikernel-patch/include/uapi -I$(CONF_DIR) -o $@ $(filter %.c,$(STRESS_SRCS)) -lpthread

stress-smoke: $(STRESS)
	$(CARGO) build -q --release -p kvmshim
	LD_PRELOAD=$(SHIM_LIB) $(STRESS) ioctl --seconds 20
	LD_PRELOAD=$(SHIM_LIB) $(STRESS) syscall --seconds 20

soak: $(STRESS)
	$(CARGO) build -q --release -p kvmshim
	LD_PRELOAD=$(SHIM_LIB) $(STRESS) soak --seconds $(SOAK_SECONDS)

# `make vm-fuzz`: the y kernel (make kernel) under QEMU TCG, kvmng-fuzz
# --differential inside: the kernel's kvmng syscalls against the library's
# emulation, VMFUZZ_EXECS (default 1000000) executions; the rate, the
# divergences and the census per syscall and errno, unreached ones named
# (kernel-patch/vm-test/fuzz.sh; target/vm-fuzz/y/report.txt).
vm-fuzz: deps linux-source qemu-backports
	$(CARGO) build -q --release -p kvmng-fuzz
	@kernel-patch/scripts/kernel.sh y
	@kernel-patch/vm-test/fuzz.sh y

vm-stress: deps linux-source qemu-backports $(STRESS) conformance
	$(CARGO) build -q --release -p kvmshim
	@kernel-patch/scripts/kernel.sh y debug m
	@kernel-patch/vm-test/stress.sh

# ---- An SMP VMM in miniature through the shim ----
# `make smp-smoke` (< 60 s): kvmng-smp, an SMP VMM in miniature through
# plain ioctl(): an in-kernel irqchip, 2 and 4 vCPU threads masked as QEMU
# masks them (pthread_sigmask + immediate_exit, or KVM_SET_SIGNAL_MASK),
# APs started by the BSP with INIT-SIPI-SIPI, the data slot created, moved
# and deleted while they wait for it, run or are paused, KVM_IRQ_LINE,
# irqfds (IOAPIC and moving MSI routes) and KVM_SIGNAL_MSI into the
# guests, pauses and resumes the QEMU way. Natively, under libkvmshim.so (auto) and in
# passthrough; every mode must print the native run's summary and exit
# status (compat-tests/smp/smp-smoke.sh). Outputs and wall times:
# target/smp-smoke/.
SMP := build/smp/kvmng-smp
SMP_SRCS := $(wildcard compat-tests/smp/*.c) $(wildcard compat-tests/smp/*.h) compat-tests/smp/guest.S
SMP_ROUNDS ?= 200

.PHONY: smp-smoke

$(SMP): $(SMP_SRCS)
	@mkdir -p $(@D)
	$(CC) -O2 -g -Wall -Wextra -std=gnu11 -Icompat-tests/smp -o $@ $(filter %.c %.S,$(SMP_SRCS)) -lpthread

smp-smoke: $(SMP)
	$(CARGO) build -q --release -p kvmshim
	compat-tests/smp/smp-smoke.sh $(SMP) $(SHIM_LIB) $(CURDIR)/target/smp-smoke $(SMP_ROUNDS)
