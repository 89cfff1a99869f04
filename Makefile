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
DEB_PACKAGES := gcc binutils make xz-utils linux-source-$(LINUX_VERSION) rsync

.PHONY: help deps linux-source build demo check test fmt-check clippy unit-tests clean

help:
	@echo "kvmng: KVM driven by system calls"
	@echo "  make demo    run a real guest through the kvmng library and say which backend did it"
	@echo "  make test    every test: formatting, clippy, the ABI checks, the library on /dev/kvm"
	@echo "  make check   the quick subset of make test (no dependency installation)"

# Installs missing Debian packages (as root), or names them and stops.
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "==> installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "error: missing Debian packages:$$missing"; \
	    echo "       install them with: sudo apt-get install$$missing"; exit 1; \
	  fi; \
	fi
	@command -v $(CARGO) >/dev/null || { echo "error: cargo not found; install Rust with rustup (https://rustup.rs), then rerun"; exit 1; }
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "==> installing cargo-nextest (cargo install cargo-nextest --locked)"; $(CARGO) install -q cargo-nextest --locked; }

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

demo: deps
	@$(CARGO) build -q --release -p kvmng-cli
	@./target/release/kvmng demo

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

check: fmt-check clippy unit-tests

test: deps linux-source
	@$(MAKE) -s check

clean:
	$(CARGO) clean
