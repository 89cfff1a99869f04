//! kvmng-krun: boots a kernel ELF with libkrun, the way libkrun's own
//! examples do (krun_create_ctx, krun_set_vm_config, krun_set_kernel,
//! krun_start_enter), with a legacy serial console (COM1) on stdout or in
//! a file.
//!
//!     kvmng-krun --vcpus 2 --mem 64 [--serial FILE] [--initrd FILE]
//!                [--cmdline STRING] KERNEL.elf
//!
//! KERNEL.elf is an ELF64 kernel: the project's SMP guest, or a Linux
//! vmlinux, which then gets --initrd and --cmdline (the Linux boot
//! protocol, as libkrun sets it up).
//!
//! krun_start_enter does not return while the VM runs: the process exits
//! with the guest (libkrun exits on a guest reset or shutdown).

use std::ffi::CString;
use std::os::fd::IntoRawFd;
use std::process::ExitCode;

const USAGE: &str = "usage: kvmng-krun [--vcpus N] [--mem MiB] [--serial FILE] [--log LEVEL] [--initrd FILE] [--cmdline STRING] KERNEL.elf";

fn main() -> ExitCode {
    let mut vcpus: u8 = 2;
    let mut mem: u32 = 64;
    let mut kernel = None;
    let mut initrd: Option<CString> = None;
    let mut cmdline: Option<CString> = None;
    let mut serial_fd = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--vcpus" => vcpus = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--mem" => mem = args.next().and_then(|v| v.parse().ok()).unwrap_or(0),
            "--serial" => {
                let Some(path) = args.next() else {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                };
                match std::fs::File::create(&path) {
                    Ok(f) => serial_fd = f.into_raw_fd(),
                    Err(e) => {
                        eprintln!("kvmng-krun: {path}: {e}");
                        return ExitCode::from(1);
                    }
                }
            }
            "--initrd" | "--cmdline" => {
                let Some(v) = args.next().and_then(|v| CString::new(v).ok()) else {
                    eprintln!("{USAGE}");
                    return ExitCode::from(2);
                };
                if a == "--initrd" {
                    initrd = Some(v);
                } else {
                    cmdline = Some(v);
                }
            }
            "--log" => {
                let level = args.next().and_then(|v| v.parse().ok()).unwrap_or(0);
                krun::krun_set_log_level(level);
            }
            _ if kernel.is_none() && !a.starts_with('-') => kernel = Some(a),
            _ => {
                eprintln!("{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let Some(kernel) = kernel else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let check = |what: &str, r: i32| {
        if r < 0 {
            eprintln!(
                "kvmng-krun: {what}: {}",
                std::io::Error::from_raw_os_error(-r)
            );
            std::process::exit(1);
        }
        r
    };
    let ctx = check("krun_create_ctx", krun::krun_create_ctx()) as u32;
    check(
        "krun_set_vm_config",
        krun::krun_set_vm_config(ctx, vcpus, mem),
    );
    check(
        "krun_disable_implicit_console",
        krun::krun_disable_implicit_console(ctx),
    );
    check(
        "krun_disable_implicit_vsock",
        krun::krun_disable_implicit_vsock(ctx),
    );
    // No input (-1); output to stdout or the --serial file, whose fd
    // libkrun now owns.
    // SAFETY: plain integers.
    check("krun_add_serial_console_default", unsafe {
        krun::krun_add_serial_console_default(ctx, -1, serial_fd)
    });
    let path = CString::new(kernel).expect("no NUL in the path");
    let ptr_or_null = |s: &Option<CString>| s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr());
    // Format 1: ELF.
    // SAFETY: valid C strings or NULL, alive until the call returns.
    check("krun_set_kernel", unsafe {
        krun::krun_set_kernel(
            ctx,
            path.as_ptr(),
            1,
            ptr_or_null(&initrd),
            ptr_or_null(&cmdline),
        )
    });
    check("krun_start_enter", krun::krun_start_enter(ctx));
    ExitCode::SUCCESS
}
