//! Trap and emulate of the kvmng syscalls on stock kernels (to be written).

/// Set-up at load time.
pub fn init() {}

/// True when this process has the kvmng seccomp filter installed.
pub fn filter_installed() -> bool {
    false
}
