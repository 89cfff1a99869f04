//! The Rust ABI agrees with the C headers.
//!
//! 1. `kernel-patch/include/uapi/linux/kvmng.h`: a C program, generated here
//!    from the macro names parsed out of the header, prints every macro's
//!    value and the layout of every struct it defines (`kvmng_state_entry`,
//!    `kvmng_ioregion` and the two wire-protocol messages); each must equal
//!    the Rust value, and every macro must have one (and every `pub const`
//!    of `uapi.rs` and `syscalls.rs` must be a macro of the header).
//! 2. The Linux 6.12 uapi headers (`$KVMNG_LINUX_SRC/usr/include`, from
//!    `make headers`): a C program generated from the names in
//!    `KVM_IOCTLS` prints every ioctl number and the size and alignment of
//!    every kvm-bindings struct the ABI uses; each must equal the Rust value.

mod common;
use common::linux_src;
use std::collections::{BTreeMap, BTreeSet};
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use kvmng_abi::ioctls::{ioc_size, KVM_IOCTLS};
use kvmng_abi::kvm_bindings::*;
use kvmng_abi::syscalls::{Syscall, KVMNG_SYSCALL_BASE};
use kvmng_abi::uapi::*;
use kvmng_abi::STATE_KINDS;

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kvmng_include_dir() -> PathBuf {
    crate_dir().join("../../kernel-patch/include/uapi")
}

/// `$KVMNG_LINUX_SRC/usr/include`, which must hold the installed headers.
fn linux_usr_include() -> PathBuf {
    let dir = linux_src().join("usr/include");
    assert!(
        dir.join("linux/kvm.h").is_file() && dir.join("asm/kvm.h").is_file(),
        "{} holds no installed uapi headers (linux/kvm.h, asm/kvm.h): run `make linux-source` \
         (Linux 6.12 with `make headers` run in it), or point KVMNG_LINUX_SRC at such a \
         tree",
        dir.display()
    );
    dir
}

/// Compiles `source` with `cc` and the include directories (searched before
/// the system ones), runs it and returns its `NAME VALUE` lines.
fn compile_and_run(tag: &str, source: &str, includes: &[PathBuf]) -> BTreeMap<String, i128> {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let c = dir.join(format!("{tag}.c"));
    let exe = dir.join(tag);
    std::fs::write(&c, source).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let mut cmd = Command::new(&cc);
    cmd.arg("-std=gnu11").arg("-Wall").arg("-Werror");
    for inc in includes {
        cmd.arg("-I").arg(inc);
    }
    cmd.arg("-o").arg(&exe).arg(&c);
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        out.status.success(),
        "{cc} failed on {}:\n{}",
        c.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().unwrap();
    assert!(run.status.success(), "{} failed", exe.display());
    let mut values = BTreeMap::new();
    for line in String::from_utf8(run.stdout).unwrap().lines() {
        let (name, value) = line.split_once(' ').unwrap();
        let value: i128 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad line {line:?}"));
        assert!(
            values.insert(name.to_string(), value).is_none(),
            "{name} twice"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    values
}

/// The object-like macros `#define`d in a header, except its include guard.
fn header_macros(header: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in header.lines() {
        let Some(rest) = line.trim_start().strip_prefix('#') else {
            continue;
        };
        let Some(rest) = rest.trim_start().strip_prefix("define") else {
            continue;
        };
        let rest = rest.trim_start();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        assert!(
            !rest[end..].starts_with('('),
            "function-like macro {name} in kvmng.h: teach this test about it"
        );
        if name.starts_with("_UAPI_") && rest[end..].trim().is_empty() {
            continue; // include guard
        }
        names.push(name.to_string());
    }
    names
}

/// Names of the top-level `pub const NAME:` items of a Rust source file.
fn rust_consts(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|l| l.strip_prefix("pub const "))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}

/// Every macro of kvmng.h and its Rust counterpart's value.
fn rust_macro_values() -> BTreeMap<String, i128> {
    let mut m: BTreeMap<String, i128> = BTreeMap::new();
    macro_rules! put {
        ($($name:ident),* $(,)?) => {
            $( assert!(m.insert(stringify!($name).to_string(), i128::from($name)).is_none()); )*
        };
    }
    put!(
        KVMNG_SYSCALL_BASE,
        KVMNG_SYSCALL_COUNT,
        KVM_CAP_KVMNG,
        KVMNG_SYSCALLS_ALL,
        KVMNG_UNBIND,
        KVMNG_CREATE_VCPU_BIND,
        KVMNG_CREATE_VCPU_FLAGS,
        KVMNG_STATE_GET,
        KVMNG_STATE_SET,
        KVMNG_STATE_KIND_MAX,
        KVMNG_STATE_MAX_ENTRIES,
        KVMNG_STATE_NOT_DONE,
        KVMNG_IRQ_LINE,
        KVMNG_IRQ_INTERRUPT,
        KVMNG_IRQ_NMI,
        KVMNG_IRQ_SMI,
        KVMNG_MEMORY_MAP_MAX,
        KVMNG_SCOPE_SYSTEM,
        KVMNG_SCOPE_VM,
        KVMNG_SCOPE_VCPU,
        KVMNG_IOREGION_ADD,
        KVMNG_IOREGION_DEL,
        KVMNG_IOREGION_PIO,
        KVMNG_IOREGION_POSTED,
        KVMNG_IOREGION_FLAGS,
        KVMNG_IOREGION_MAX,
        KVMNG_IOREGION_MAX_SIZE,
        KVMNG_IOREGION_PIO_END,
        KVMNG_IOREGION_READ,
        KVMNG_IOREGION_WRITE,
        KVMNG_IOREGION_REQ_POSTED,
        KVMNG_IOREGION_REQ_PIO,
    );
    for (name, kind) in STATE_KINDS {
        assert!(m.insert(name.to_string(), i128::from(kind)).is_none());
    }
    for call in Syscall::ALL {
        let name = format!("__NR_{}", call.name());
        assert!(m.insert(name, i128::from(call.nr())).is_none());
    }
    m
}

trait Signedness {
    const SIGNED: bool;
}
macro_rules! signedness {
    ($($t:ty => $v:expr),* $(,)?) => {
        $( impl Signedness for $t { const SIGNED: bool = $v; } )*
    };
}
signedness!(u8 => false, u32 => false, i32 => true, u64 => false, [u64; 4] => false);
fn signed<T: Signedness>(_: &T) -> bool {
    T::SIGNED
}

/// Layout facts of one struct on the Rust side, named as the C program
/// prints them: `NAME.sizeof`, `NAME.alignof`, and per field
/// `NAME.FIELD.offset`, `.size` and `.signed`.
macro_rules! rust_layout {
    ($m:ident, $t:ident, [$($f:ident),* $(,)?]) => {{
        let e = $t::default();
        let name = stringify!($t);
        $m.insert(format!("{name}.sizeof"), size_of::<$t>() as i128);
        $m.insert(format!("{name}.alignof"), align_of::<$t>() as i128);
        $(
            $m.insert(format!("{name}.{}.offset", stringify!($f)), offset_of!($t, $f) as i128);
            $m.insert(format!("{name}.{}.size", stringify!($f)), size_of_val(&e.$f) as i128);
            $m.insert(format!("{name}.{}.signed", stringify!($f)), i128::from(signed(&e.$f)));
        )*
    }};
}

/// The structs of kvmng.h and their fields, as the C program names them.
const STRUCTS: &[(&str, &[&str])] = &[
    (
        "kvmng_state_entry",
        &["kind", "op", "addr", "size", "result"],
    ),
    (
        "kvmng_ioregion",
        &["addr", "size", "fd", "flags", "user_data", "reserved"],
    ),
    (
        "kvmng_ioregion_request",
        &[
            "id",
            "offset",
            "data",
            "user_data",
            "vcpu_id",
            "len",
            "dir",
            "flags",
            "pad",
        ],
    ),
    ("kvmng_ioregion_reply", &["id", "data"]),
];

/// Layout facts of every struct of kvmng.h on the Rust side.
fn rust_struct_layouts_kvmng() -> BTreeMap<String, i128> {
    let mut m = BTreeMap::new();
    rust_layout!(m, kvmng_state_entry, [kind, op, addr, size, result]);
    rust_layout!(
        m,
        kvmng_ioregion,
        [addr, size, fd, flags, user_data, reserved]
    );
    rust_layout!(
        m,
        kvmng_ioregion_request,
        [id, offset, data, user_data, vcpu_id, len, dir, flags, pad]
    );
    rust_layout!(m, kvmng_ioregion_reply, [id, data]);
    m
}

/// The structs the header defines, by name.
fn header_structs(header: &str) -> BTreeSet<String> {
    header
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("struct "))
        .filter_map(|l| l.trim_end().strip_suffix('{'))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn kvmng_header_agrees_with_rust() {
    let header_path = kvmng_include_dir().join("linux/kvmng.h");
    let header = std::fs::read_to_string(&header_path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", header_path.display()));
    let macros = header_macros(&header);
    assert!(!macros.is_empty());

    let rust = rust_macro_values();
    let missing: Vec<&String> = macros.iter().filter(|n| !rust.contains_key(*n)).collect();
    assert!(
        missing.is_empty(),
        "macros of kvmng.h with no Rust counterpart: {missing:?}"
    );
    let macro_set: BTreeSet<&String> = macros.iter().collect();
    let stale: Vec<&String> = rust.keys().filter(|n| !macro_set.contains(n)).collect();
    assert!(
        stale.is_empty(),
        "Rust values for macros kvmng.h lacks: {stale:?}"
    );

    // Every top-level constant of uapi.rs and syscalls.rs is a macro of the
    // header (so nothing drifts in on the Rust side either).
    for file in ["src/uapi.rs", "src/syscalls.rs"] {
        let src = std::fs::read_to_string(crate_dir().join(file)).unwrap();
        for name in rust_consts(&src) {
            assert!(
                macro_set.contains(&name),
                "{file}: pub const {name} is not a macro of kvmng.h"
            );
        }
    }
    assert_eq!(Syscall::ALL.len(), KVMNG_SYSCALL_COUNT as usize);

    let declared = header_structs(&header);
    let listed: BTreeSet<String> = STRUCTS.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(
        declared, listed,
        "every struct of kvmng.h (and only those) must be in STRUCTS"
    );

    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvmng.h>\n\
         #define SIGNED(x) ((__typeof__(x))-1 < (__typeof__(x))0)\n\
         #define ASIGNED(x) ((__typeof__((x)[0]))-1 < (__typeof__((x)[0]))0)\n\
         int main(void)\n{\n",
    );
    for name in &macros {
        c.push_str(&format!(
            "\tprintf(\"%s %lld\\n\", \"{name}\", (long long)({name}));\n"
        ));
    }
    for (s, fields) in STRUCTS {
        c.push_str(&format!(
            "\t{{\n\t\tstruct {s} e = {{0}};\n\t\t(void)e;\n\
             \t\tprintf(\"{s}.sizeof %zu\\n\", sizeof(struct {s}));\n\
             \t\tprintf(\"{s}.alignof %zu\\n\", _Alignof(struct {s}));\n"
        ));
        for f in *fields {
            // Arrays (reserved) report the signedness of their elements.
            let signed = if *f == "reserved" {
                "ASIGNED"
            } else {
                "SIGNED"
            };
            c.push_str(&format!(
                "\t\tprintf(\"{s}.{f}.offset %zu\\n\", offsetof(struct {s}, {f}));\n\
                 \t\tprintf(\"{s}.{f}.size %zu\\n\", sizeof(e.{f}));\n\
                 \t\tprintf(\"{s}.{f}.signed %d\\n\", {signed}(e.{f}));\n"
            ));
        }
        c.push_str("\t}\n");
    }
    c.push_str("\treturn 0;\n}\n");

    let c_values = compile_and_run("kvmng_probe", &c, &[kvmng_include_dir()]);

    let mut want = rust;
    want.extend(rust_struct_layouts_kvmng());
    let mut errors = Vec::new();
    for (name, rust_value) in &want {
        match c_values.get(name) {
            Some(v) if v == rust_value => {}
            Some(v) => errors.push(format!("{name}: C {v}, Rust {rust_value}")),
            None => errors.push(format!("{name}: not printed by the C program")),
        }
    }
    assert!(
        errors.is_empty(),
        "kvmng.h and kvmng-abi disagree:\n{}",
        errors.join("\n")
    );
    assert_eq!(c_values.len(), want.len());
    assert_eq!(
        i128::from(KVMNG_SYSCALL_BASE),
        c_values["KVMNG_SYSCALL_BASE"]
    );
}

/// The kvm-bindings structs the ABI uses: every ioctl argument struct of
/// `KVM_IOCTLS` (checked below to be complete) and the structs that
/// `kvmng_memory_map()`, `kvmng_vcpu_state()` entries and the `kvm_run`
/// page carry.
fn rust_struct_layouts() -> BTreeMap<&'static str, (usize, usize)> {
    let mut m = BTreeMap::new();
    macro_rules! structs {
        ($($t:ident),* $(,)?) => {
            $( m.insert(stringify!($t), (size_of::<$t>(), align_of::<$t>())); )*
        };
    }
    structs!(
        kvm_clear_dirty_log,
        kvm_clock_data,
        kvm_coalesced_mmio_zone,
        kvm_cpuid,
        kvm_cpuid_entry,
        kvm_cpuid2,
        kvm_cpuid_entry2,
        kvm_create_device,
        kvm_create_guest_memfd,
        kvm_debugregs,
        kvm_device_attr,
        kvm_dirty_log,
        kvm_enable_cap,
        kvm_enc_region,
        kvm_fpu,
        kvm_guest_debug,
        kvm_hyperv_eventfd,
        kvm_interrupt,
        kvm_ioeventfd,
        kvm_irq_level,
        kvm_irq_routing,
        kvm_irq_routing_entry,
        kvm_irq_routing_xen_evtchn,
        kvm_irqchip,
        kvm_irqfd,
        kvm_lapic_state,
        kvm_memory_attributes,
        kvm_mp_state,
        kvm_msi,
        kvm_msr_entry,
        kvm_msr_filter,
        kvm_msr_list,
        kvm_msrs,
        kvm_nested_state,
        kvm_one_reg,
        kvm_pit_config,
        kvm_pit_state,
        kvm_pit_state2,
        kvm_pmu_event_filter,
        kvm_pre_fault_memory,
        kvm_regs,
        kvm_run,
        kvm_signal_mask,
        kvm_sregs,
        kvm_sregs2,
        kvm_tpr_access_ctl,
        kvm_translation,
        kvm_userspace_memory_region,
        kvm_userspace_memory_region2,
        kvm_vapic_addr,
        kvm_vcpu_events,
        kvm_x86_mce,
        kvm_xcrs,
        kvm_xen_hvm_attr,
        kvm_xen_hvm_config,
        kvm_xen_vcpu_attr,
        kvm_xsave,
    );
    m
}

/// The argument type of each ioctl `#define` in linux/kvm.h (`None` for
/// `_IO`), from the installed header.
fn ioctl_arguments(header: &str) -> BTreeMap<String, Option<String>> {
    let joined = header.replace("\\\n", " ");
    let mut m = BTreeMap::new();
    for line in joined.lines() {
        let Some(rest) = line.trim_start().strip_prefix("#define") else {
            continue;
        };
        let mut parts = rest.trim_start().splitn(2, char::is_whitespace);
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let value = value.trim_start();
        let Some(args) = ["_IOWR(", "_IOW(", "_IOR(", "_IO("]
            .iter()
            .find_map(|p| value.strip_prefix(p))
        else {
            continue;
        };
        let args = &args[..args.find(')').unwrap()];
        let arg = args.splitn(3, ',').nth(2).map(|t| t.trim().to_string());
        m.insert(name.to_string(), arg);
    }
    m
}

#[test]
fn kvm_ioctl_numbers_and_struct_sizes_agree_with_linux_6_12() {
    let include = linux_usr_include();
    let header = std::fs::read_to_string(include.join("linux/kvm.h")).unwrap();
    let arguments = ioctl_arguments(&header);
    let structs = rust_struct_layouts();

    // Every struct an ioctl of the table takes is in the size list.
    for info in KVM_IOCTLS {
        let arg = arguments
            .get(info.name)
            .unwrap_or_else(|| panic!("{} is not an ioctl of linux/kvm.h", info.name));
        if let Some(s) = arg.as_deref().and_then(|a| a.strip_prefix("struct ")) {
            assert!(
                structs.contains_key(s.trim()),
                "{}: struct {s} is missing from rust_struct_layouts()",
                info.name
            );
        }
    }

    let mut c = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/kvm.h>\n\nint main(void)\n{\n",
    );
    for info in KVM_IOCTLS {
        let name = info.name;
        c.push_str(&format!(
            "\tprintf(\"ioctl.{name} %llu\\n\", (unsigned long long)({name}));\n"
        ));
        if let Some(Some(arg)) = arguments.get(name) {
            c.push_str(&format!(
                "\tprintf(\"argsize.{name} %zu\\n\", sizeof({arg}));\n"
            ));
        }
    }
    for s in structs.keys() {
        c.push_str(&format!(
            "\tprintf(\"sizeof.{s} %zu\\n\", sizeof(struct {s}));\n\
             \tprintf(\"alignof.{s} %zu\\n\", _Alignof(struct {s}));\n"
        ));
    }
    c.push_str("\treturn 0;\n}\n");

    let c_values = compile_and_run("kvm_ioctl_probe", &c, &[include]);

    let mut errors = Vec::new();
    let mut check = |key: String, rust: i128| match c_values.get(&key) {
        Some(v) if *v == rust => {}
        Some(v) => errors.push(format!("{key}: C {v:#x}, Rust {rust:#x}")),
        None => errors.push(format!("{key}: not printed by the C program")),
    };
    for info in KVM_IOCTLS {
        check(format!("ioctl.{}", info.name), i128::from(info.cmd));
        if matches!(arguments.get(info.name), Some(Some(_))) {
            check(
                format!("argsize.{}", info.name),
                i128::from(ioc_size(info.cmd)),
            );
        }
    }
    for (s, (size, align)) in &structs {
        check(format!("sizeof.{s}"), *size as i128);
        check(format!("alignof.{s}"), *align as i128);
    }
    assert!(
        errors.is_empty(),
        "linux 6.12 uapi and kvmng-abi disagree:\n{}",
        errors.join("\n")
    );
}
