//! Choosing the backend: probe the kernel, or obey `KVMNG_BACKEND`.

use crate::backend::legacy::Legacy;
use crate::backend::native::Native;
use crate::backend::{Backend, BackendKind};
use crate::errno::Errno;
use kvmng_abi::Syscall;

/// The environment variable that forces a backend: `native`, `legacy`, or
/// `auto` (the default: probe).
pub const BACKEND_ENV: &str = "KVMNG_BACKEND";

/// True when the running kernel implements the kvmng syscalls: the probe of
/// docs/api.md section 4, `kvmng_run(~0)`, answers EINVAL (unknown flags)
/// on a kvmng kernel and ENOSYS elsewhere. It has no side effect.
pub fn kernel_has_kvmng() -> bool {
    // SAFETY: an integer argument only; the call fails either way.
    let r = unsafe { crate::sys::kvmng(Syscall::Run, u64::from(u32::MAX), 0, 0, 0) };
    r == Err(Errno(libc::EINVAL))
}

/// Why a backend could not be chosen.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectError {
    /// `KVMNG_BACKEND` has a value that is not a backend.
    #[error("{BACKEND_ENV}={0:?} is not a backend; use native, legacy or auto")]
    UnknownBackend(String),
    /// `native` was forced but the kernel lacks the syscalls.
    #[error(
        "{BACKEND_ENV}=native, but this kernel has no kvmng syscalls (they answer ENOSYS); \
         boot a kernel with the kvmng patches, or use {BACKEND_ENV}=legacy"
    )]
    NativeUnavailable,
}

/// The backend the request names, given whether the kernel has kvmng.
pub fn choose(request: Option<&str>, kernel_has_kvmng: bool) -> Result<BackendKind, SelectError> {
    match request.unwrap_or("auto") {
        "auto" | "" => Ok(if kernel_has_kvmng {
            BackendKind::Native
        } else {
            BackendKind::Legacy
        }),
        "legacy" => Ok(BackendKind::Legacy),
        "native" if kernel_has_kvmng => Ok(BackendKind::Native),
        "native" => Err(SelectError::NativeUnavailable),
        other => Err(SelectError::UnknownBackend(other.to_string())),
    }
}

/// A backend of the given kind.
pub fn backend(kind: BackendKind) -> &'static dyn Backend {
    static NATIVE: Native = Native;
    match kind {
        BackendKind::Native => &NATIVE,
        BackendKind::Legacy => {
            static LEGACY: std::sync::OnceLock<Legacy> = std::sync::OnceLock::new();
            LEGACY.get_or_init(Legacy::new)
        }
    }
}

/// The backend that `KVMNG_BACKEND` and the running kernel call for.
pub fn from_env() -> Result<&'static dyn Backend, SelectError> {
    let request = std::env::var(BACKEND_ENV).ok();
    choose(request.as_deref(), kernel_has_kvmng()).map(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_map_to_backends() {
        assert_eq!(choose(None, false), Ok(BackendKind::Legacy));
        assert_eq!(choose(None, true), Ok(BackendKind::Native));
        assert_eq!(choose(Some("auto"), true), Ok(BackendKind::Native));
        assert_eq!(choose(Some("legacy"), true), Ok(BackendKind::Legacy));
        assert_eq!(choose(Some("native"), true), Ok(BackendKind::Native));
        assert_eq!(
            choose(Some("native"), false),
            Err(SelectError::NativeUnavailable)
        );
        assert!(matches!(
            choose(Some("fast"), false),
            Err(SelectError::UnknownBackend(_))
        ));
    }

    #[test]
    fn the_probe_answers_without_side_effects() {
        // On this host either answer is possible; the probe must not crash
        // and must agree with itself.
        assert_eq!(kernel_has_kvmng(), kernel_has_kvmng());
    }
}
