//! Completeness of the ioctl mapping: every ioctl `#define` of the Linux
//! 6.12 `include/uapi/linux/kvm.h` (and x86's `asm/kvm.h`) has exactly one
//! row in the mapping table of `docs/api.md`, every row is such an ioctl,
//! and the x86 rows are exactly `kvmng_abi::ioctls::KVM_IOCTLS`, with the
//! same fd classes, numbers and new-API forms.
//!
//! The kernel tree comes from `$KVMNG_LINUX_SRC` (default
//! `$HOME/.cache/kvmng/linux-source-6.12`, as the Makefile); without it the test fails and
//! says to run `make linux-source`.

mod common;
use common::linux_src;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use kvmng_abi::ioctls::{FdClass, IoctlInfo, NewApiForm, KVM_IOCTLS};
use kvmng_abi::uapi::*;

const BEGIN: &str = "<!-- mapping-table:begin -->";
const END: &str = "<!-- mapping-table:end -->";
const NOT_APPLICABLE: &str = "not applicable";

fn read_required(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}\nThe Linux 6.12 sources are missing: run `make linux-source` \
             (or point KVMNG_LINUX_SRC at an extracted linux-source-6.12 tree)",
            path.display()
        )
    })
}

/// The names of every `#define NAME _IO...(` in a header, in order, with
/// backslash-continued lines joined.
fn ioctl_defines(header: &str) -> Vec<String> {
    let joined = header.replace("\\\n", " ");
    let mut names = Vec::new();
    for line in joined.lines() {
        let rest = line.trim_start();
        let Some(rest) = rest.strip_prefix('#') else {
            continue;
        };
        let mut words = rest.trim_start().splitn(2, char::is_whitespace);
        if words.next() != Some("define") {
            continue;
        }
        let rest = words.next().unwrap_or("").trim_start();
        let name_end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let (name, value) = rest.split_at(name_end);
        let value = value.trim_start();
        let is_ioctl = ["_IOWR", "_IOW", "_IOR", "_IO"].iter().any(|m| {
            value
                .strip_prefix(m)
                .is_some_and(|v| v.trim_start().starts_with('('))
        });
        if is_ioctl {
            assert!(name.starts_with("KVM_"), "unexpected ioctl name {name}");
            names.push(name.to_string());
        }
    }
    names
}

fn header_ioctls() -> Vec<String> {
    let src = linux_src();
    let mut names = ioctl_defines(&read_required(&src.join("include/uapi/linux/kvm.h")));
    names.extend(ioctl_defines(&read_required(
        &src.join("arch/x86/include/uapi/asm/kvm.h"),
    )));
    names
}

struct Row {
    cells: Vec<String>,
    not_applicable: bool,
}

/// The rows of the mapping table, by ioctl name (each name once).
fn doc_rows() -> BTreeMap<String, Row> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let doc = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let begin = doc
        .find(BEGIN)
        .expect("docs/api.md has no mapping-table:begin marker");
    let end = doc
        .find(END)
        .expect("docs/api.md has no mapping-table:end marker");
    assert!(begin < end, "mapping-table markers out of order");
    let mut rows = BTreeMap::new();
    for line in doc[begin + BEGIN.len()..end].lines() {
        let line = line.trim();
        if !line.starts_with('|') {
            continue;
        }
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect();
        let Some(name) = cells[0]
            .strip_prefix('`')
            .and_then(|c| c.strip_suffix('`'))
            .map(str::to_string)
        else {
            continue;
        };
        if !name.starts_with("KVM_") {
            continue;
        }
        let not_applicable = line.contains(NOT_APPLICABLE);
        let row = Row {
            cells,
            not_applicable,
        };
        assert!(
            rows.insert(name.clone(), row).is_none(),
            "{name} has more than one row in the mapping table"
        );
    }
    rows
}

fn class_text(class: FdClass) -> &'static str {
    match class {
        FdClass::System => "/dev/kvm",
        FdClass::Vm => "VM",
        FdClass::Vcpu => "vCPU",
        FdClass::Device => "device",
    }
}

fn state_kind_name(kind: u32) -> &'static str {
    match kind {
        KVMNG_STATE_REGS => "KVMNG_STATE_REGS",
        KVMNG_STATE_SREGS => "KVMNG_STATE_SREGS",
        KVMNG_STATE_SREGS2 => "KVMNG_STATE_SREGS2",
        KVMNG_STATE_FPU => "KVMNG_STATE_FPU",
        KVMNG_STATE_XSAVE => "KVMNG_STATE_XSAVE",
        KVMNG_STATE_XSAVE2 => "KVMNG_STATE_XSAVE2",
        KVMNG_STATE_XCRS => "KVMNG_STATE_XCRS",
        KVMNG_STATE_MSRS => "KVMNG_STATE_MSRS",
        KVMNG_STATE_LAPIC => "KVMNG_STATE_LAPIC",
        KVMNG_STATE_EVENTS => "KVMNG_STATE_EVENTS",
        KVMNG_STATE_MP_STATE => "KVMNG_STATE_MP_STATE",
        KVMNG_STATE_DEBUGREGS => "KVMNG_STATE_DEBUGREGS",
        KVMNG_STATE_CPUID => "KVMNG_STATE_CPUID",
        KVMNG_STATE_ONE_REG => "KVMNG_STATE_ONE_REG",
        other => panic!("unknown state kind {other}"),
    }
}

fn irq_kind_name(kind: u32) -> &'static str {
    match kind {
        KVMNG_IRQ_LINE => "KVMNG_IRQ_LINE",
        KVMNG_IRQ_INTERRUPT => "KVMNG_IRQ_INTERRUPT",
        KVMNG_IRQ_NMI => "KVMNG_IRQ_NMI",
        KVMNG_IRQ_SMI => "KVMNG_IRQ_SMI",
        other => panic!("unknown irq kind {other}"),
    }
}

/// What the new-API-form cell must say for `info` issued on `class`.
fn expected_form_text(info: &IoctlInfo, class: FdClass) -> String {
    match info.form_on(class) {
        NewApiForm::CreateVm => "kvmng_create_vm(".to_string(),
        NewApiForm::CreateVcpu => "kvmng_create_vcpu(".to_string(),
        NewApiForm::Run => "kvmng_run(".to_string(),
        NewApiForm::VcpuState { kind, op } => {
            let op = if op == KVMNG_STATE_GET { "GET" } else { "SET" };
            format!("kvmng_vcpu_state({}, {op})", state_kind_name(kind))
        }
        NewApiForm::Irq { kind } => format!("kvmng_irq({},", irq_kind_name(kind)),
        NewApiForm::MemoryMap => "kvmng_memory_map(".to_string(),
        NewApiForm::Control => {
            let scope = match class.scope() {
                Some(KVMNG_SCOPE_SYSTEM) => "KVMNG_SCOPE_SYSTEM",
                Some(KVMNG_SCOPE_VM) => "KVMNG_SCOPE_VM",
                Some(KVMNG_SCOPE_VCPU) => "KVMNG_SCOPE_VCPU",
                other => panic!("no scope {other:?} for {class:?}"),
            };
            format!("kvmng_control({scope}, cmd)")
        }
        NewApiForm::NotApplicable(_) => "device fd: stays".to_string(),
    }
}

#[test]
fn every_header_ioctl_has_one_row_and_nothing_else_does() {
    let header = header_ioctls();
    let header_set: BTreeSet<&str> = header.iter().map(String::as_str).collect();
    assert_eq!(header_set.len(), header.len(), "an ioctl is defined twice");
    let rows = doc_rows();

    let missing: Vec<&str> = header_set
        .iter()
        .copied()
        .filter(|n| !rows.contains_key(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "ioctls with no row in docs/api.md: {missing:?}"
    );

    let extra: Vec<&String> = rows
        .keys()
        .filter(|n| !header_set.contains(n.as_str()))
        .collect();
    assert!(extra.is_empty(), "rows that are not 6.12 ioctls: {extra:?}");

    let not_applicable = rows.values().filter(|r| r.not_applicable).count();
    eprintln!(
        "header: {} ioctls; mapping table: {} rows, {} not applicable; KVM_IOCTLS: {}",
        header.len(),
        rows.len(),
        not_applicable,
        KVM_IOCTLS.len()
    );
}

#[test]
fn rust_table_is_the_header_minus_not_applicable_rows() {
    let header: BTreeSet<String> = header_ioctls().into_iter().collect();
    let rows = doc_rows();
    let x86: BTreeSet<String> = header
        .iter()
        .filter(|n| rows.get(*n).is_some_and(|r| !r.not_applicable))
        .cloned()
        .collect();
    let rust: BTreeSet<String> = KVM_IOCTLS.iter().map(|i| i.name.to_string()).collect();
    assert_eq!(
        rust.len(),
        KVM_IOCTLS.len(),
        "KVM_IOCTLS lists a name twice"
    );

    for info in KVM_IOCTLS {
        let row = rows
            .get(info.name)
            .unwrap_or_else(|| panic!("{} is in KVM_IOCTLS but has no row", info.name));
        assert!(
            !row.not_applicable,
            "{} is in KVM_IOCTLS but its row says not applicable",
            info.name
        );
    }
    let only_doc: Vec<_> = x86.difference(&rust).collect();
    let only_rust: Vec<_> = rust.difference(&x86).collect();
    assert!(
        only_doc.is_empty() && only_rust.is_empty(),
        "x86 rows of docs/api.md and KVM_IOCTLS differ: only in the doc {only_doc:?}, \
         only in Rust {only_rust:?}"
    );
}

#[test]
fn x86_rows_agree_with_the_rust_table() {
    let rows = doc_rows();
    for info in KVM_IOCTLS {
        let row = rows
            .get(info.name)
            .unwrap_or_else(|| panic!("{} is in KVM_IOCTLS but has no row", info.name));
        assert_eq!(
            row.cells.len(),
            6,
            "{}: the x86 table has 6 columns",
            info.name
        );
        let classes: Vec<&str> = info.classes.iter().map(|c| class_text(*c)).collect();
        assert_eq!(
            row.cells[1],
            classes.join(", "),
            "{}: fd classes",
            info.name
        );
        assert_eq!(
            row.cells[3],
            format!("`{:#010x}`", info.cmd),
            "{}: request number",
            info.name
        );
        for class in info.classes {
            let want = expected_form_text(info, *class);
            assert!(
                row.cells[4].contains(&want),
                "{} on {class:?}: the form cell {:?} does not say {want:?}",
                info.name,
                row.cells[4]
            );
        }
    }
}

#[test]
fn not_applicable_rows_name_their_architecture() {
    for (name, row) in doc_rows().iter().filter(|(_, r)| r.not_applicable) {
        let notes = row.cells.last().unwrap();
        assert!(
            notes.starts_with("not applicable: ") && notes.contains(" only"),
            "{name}: notes should start with \"not applicable: <arch> only\": {notes:?}"
        );
    }
}
