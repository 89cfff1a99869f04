//! What the ABI tests share: where the Linux 6.12 tree is.

use std::path::PathBuf;

/// The Linux 6.12 tree the Makefile extracts (`make linux-source`):
/// `$KVMNG_LINUX_SRC`, else `$KVMNG_CACHE/linux-source-6.12`, else
/// `$HOME/.cache/kvmng/linux-source-6.12`, the Makefile's own defaults,
/// so `cargo test` finds it outside `make` and for any user.
pub fn linux_src() -> PathBuf {
    if let Some(dir) = std::env::var_os("KVMNG_LINUX_SRC") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("KVMNG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/kvmng")
        });
    cache.join("linux-source-6.12")
}
