//! Assembles every `shim/kvmng-guests/asm/*.S` into a flat binary
//! `$OUT_DIR/<name>.bin` linked at the guest load address (0x1000).
//!
//! Pipeline per guest: `gcc -c` (C preprocessor + GNU as, so guests can
//! `#include "conventions.inc"`), `ld -Ttext=0x1000` (resolves absolute
//! references such as string addresses and IVT handler offsets), and
//! `objcopy -O binary -j .text`.

use std::env;
use std::ffi::OsStr;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Must equal `kvmng_guests::LOAD_ADDR` (checked by the crate's tests).
const LOAD_ADDR: &str = "0x1000";

fn run(tool: &str, args: &[&OsStr]) {
    let out = match Command::new(tool).args(args).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "kvmng-guests: `{tool}` not found ({e}). The guest programs are assembled with \
             gcc, ld and objcopy: install the Debian packages `gcc` and `binutils` \
             (apt-get install gcc binutils)."
        ),
        Err(e) => panic!("kvmng-guests: cannot run `{tool}`: {e}"),
    };
    if !out.status.success() {
        panic!(
            "kvmng-guests: `{tool} {}` failed ({}):\n{}{}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src_dir = manifest.join("asm");
    let src_dir = src_dir
        .canonicalize()
        .unwrap_or_else(|e| panic!("kvmng-guests: guest sources {}: {e}", src_dir.display()));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));

    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={}", src_dir.display());
    println!(
        "cargo:rerun-if-changed={}",
        src_dir.join("conventions.inc").display()
    );

    let mut sources: Vec<PathBuf> = std::fs::read_dir(&src_dir)
        .unwrap_or_else(|e| panic!("kvmng-guests: reading {}: {e}", src_dir.display()))
        .map(|e| e.expect("read_dir entry").path())
        .filter(|p| p.extension() == Some(OsStr::new("S")))
        .collect();
    sources.sort();
    assert!(
        !sources.is_empty(),
        "kvmng-guests: no *.S files in {}",
        src_dir.display()
    );

    for src in &sources {
        println!("cargo:rerun-if-changed={}", src.display());
        let name = src.file_stem().unwrap().to_str().expect("UTF-8 file name");
        let obj = out_dir.join(format!("{name}.o"));
        let elf = out_dir.join(format!("{name}.elf"));
        let bin = out_dir.join(format!("{name}.bin"));
        let inc = format!("-I{}", src_dir.display());
        run(
            "gcc",
            &[
                OsStr::new("-c"),
                OsStr::new("-nostdinc"),
                OsStr::new(&inc),
                OsStr::new("-o"),
                obj.as_os_str(),
                src.as_os_str(),
            ],
        );
        let ttext = format!("-Ttext={LOAD_ADDR}");
        run(
            "ld",
            &[
                OsStr::new("-m"),
                OsStr::new("elf_x86_64"),
                OsStr::new("-nostdlib"),
                OsStr::new(&ttext),
                OsStr::new("-e"),
                OsStr::new("_start"),
                OsStr::new("--build-id=none"),
                OsStr::new("-z"),
                OsStr::new("noexecstack"),
                OsStr::new("-o"),
                elf.as_os_str(),
                obj.as_os_str(),
            ],
        );
        run(
            "objcopy",
            &[
                OsStr::new("-O"),
                OsStr::new("binary"),
                OsStr::new("-j"),
                OsStr::new(".text"),
                elf.as_os_str(),
                bin.as_os_str(),
            ],
        );
        check_nonempty(&bin);
    }
}

fn check_nonempty(bin: &Path) {
    let len = std::fs::metadata(bin)
        .unwrap_or_else(|e| panic!("kvmng-guests: {}: {e}", bin.display()))
        .len();
    assert!(len > 0, "kvmng-guests: {} is empty", bin.display());
}
