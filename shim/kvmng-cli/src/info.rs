//! `kvmng info`: what this machine offers kvmng.

use kvmng::select::{self, BACKEND_ENV};

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// A one-paragraph description of the backend choice, for info and demo.
pub fn backend_story() -> String {
    let has = select::kernel_has_kvmng();
    let request = std::env::var(BACKEND_ENV).unwrap_or_else(|_| "auto".into());
    let probe = if has {
        "kvmng_run(~0) answered EINVAL: this kernel has the kvmng syscalls"
    } else {
        "kvmng_run(~0) answered ENOSYS: this kernel has no kvmng syscalls"
    };
    match select::choose(Some(&request), has) {
        Ok(kind) => format!(
            "{probe}; {BACKEND_ENV}={request} selects the {} backend",
            kind.name()
        ),
        Err(e) => format!("{probe}; {e}"),
    }
}

pub fn run() -> anyhow::Result<()> {
    println!("kernel:   {}", kernel_release());
    let kvm = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => "present, opened read-write".to_string(),
        Err(e) => format!("not usable: {e}"),
    };
    println!("/dev/kvm: {kvm}");
    println!("backend:  {}", backend_story());
    Ok(())
}
