//! Interposition of legacy KVM ioctls (to be written).

/// Set-up at load time.
pub fn init() {}
