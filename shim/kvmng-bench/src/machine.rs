//! The machine a run was made on, as the run detected it: CPU, memory,
//! kernel, which KVM (hardware VMX/SVM or software), whether the kernel
//! has the kvmng syscalls, the load. Every sentence about the machine in
//! docs/bench.md and in `make demo` is derived from these fields.

use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// The machine a run was made on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu_model: String,
    /// Online logical CPUs.
    pub cpus: usize,
    /// `cpu MHz` of the first CPU in /proc/cpuinfo (0 if absent).
    pub cpu_mhz: f64,
    /// MemTotal, GiB.
    pub memory_gib: f64,
    /// `uname -r`.
    pub kernel: String,
    /// Which KVM: hardware (VMX/SVM) or the software PVM, from the loaded
    /// modules.
    pub kvm: String,
    /// The kernel implements the kvmng syscalls.
    pub kvmng_syscalls: bool,
    /// The load average (/proc/loadavg) when the run started and ended.
    #[serde(default)]
    pub load: Load,
}

/// /proc/loadavg's 1, 5 and 15 minute averages at the start and the end
/// of a run: how busy the shared machine was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Load {
    /// At the start.
    pub start: String,
    /// At the end.
    pub end: String,
}

/// The 1, 5 and 15 minute load averages, as /proc/loadavg has them.
pub fn loadavg() -> String {
    read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn cpuinfo_field(cpuinfo: &str, key: &str) -> Option<String> {
    cpuinfo.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// Which virtualization runs KVM here, from the loaded modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Virt {
    /// kvm_intel: hardware VMX.
    Vmx,
    /// kvm_amd: hardware SVM.
    Svm,
    /// kvm_pvm: KVM in software, on page tables, no VMX/SVM.
    Pvm,
    /// No vendor module identified.
    Unknown,
}

impl Virt {
    /// From the `kvm*` modules in /sys/module and the CPU flags. A kernel
    /// with KVM built in lists both vendor modules; the CPU's `vmx` or
    /// `svm` flag then says which one runs.
    pub fn detect(modules: &[&str], cpu_flags: &str) -> Virt {
        let has = |m: &str| modules.contains(&m);
        let flag = |f: &str| cpu_flags.split_whitespace().any(|x| x == f);
        match (has("kvm_pvm"), has("kvm_intel"), has("kvm_amd")) {
            (true, _, _) => Virt::Pvm,
            (false, true, true) if flag("svm") => Virt::Svm,
            (false, true, true) if flag("vmx") => Virt::Vmx,
            (false, true, true) => Virt::Unknown,
            (false, true, false) => Virt::Vmx,
            (false, false, true) => Virt::Svm,
            (false, false, false) => Virt::Unknown,
        }
    }

    /// Hardware virtualization (VMX or SVM).
    pub fn is_hardware(self) -> bool {
        matches!(self, Virt::Vmx | Virt::Svm)
    }

    /// The name the prose uses: "VMX hardware", "PVM", ...
    pub fn name(self) -> &'static str {
        match self {
            Virt::Vmx => "VMX hardware",
            Virt::Svm => "SVM hardware",
            Virt::Pvm => "PVM (software)",
            Virt::Unknown => "an unidentified KVM",
        }
    }
}

/// The KVM flavour, from /sys/module and the CPU flags: the description
/// the report records (and [`Machine::virt`] reads back).
pub fn kvm_flavour(modules: &[&str], cpu_flags: &str) -> String {
    let guest = cpu_flags.split_whitespace().any(|f| f == "hypervisor");
    match Virt::detect(modules, cpu_flags) {
        Virt::Pvm => format!(
            "PVM (kvm_pvm: software virtualization on page tables, no VMX/SVM{})",
            if guest {
                "; this machine is itself a guest"
            } else {
                ""
            }
        ),
        Virt::Vmx => "kvm_intel (hardware VMX)".into(),
        Virt::Svm => "kvm_amd (hardware SVM)".into(),
        Virt::Unknown if modules.contains(&"kvm") => "kvm (vendor module not identified)".into(),
        Virt::Unknown => "no KVM module found in /sys/module".into(),
    }
}

impl Machine {
    /// Which virtualization the run detected, read back from [`Machine::kvm`]
    /// (so that results stored before this field existed say it too).
    pub fn virt(&self) -> Virt {
        if self.kvm.starts_with("PVM") {
            Virt::Pvm
        } else if self.kvm.starts_with("kvm_intel") {
            Virt::Vmx
        } else if self.kvm.starts_with("kvm_amd") {
            Virt::Svm
        } else {
            Virt::Unknown
        }
    }

    /// Reads /proc and /sys of this machine.
    pub fn detect() -> Machine {
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let modules: Vec<String> = std::fs::read_dir("/sys/module")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with("kvm"))
                    .collect()
            })
            .unwrap_or_default();
        let module_refs: Vec<&str> = modules.iter().map(String::as_str).collect();
        Machine {
            cpu_model: cpuinfo_field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into()),
            cpus: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu_mhz: cpuinfo_field(&cpuinfo, "cpu MHz")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0),
            memory_gib: mem_kib / (1024.0 * 1024.0),
            kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
            kvm: kvm_flavour(
                &module_refs,
                &cpuinfo_field(&cpuinfo, "flags").unwrap_or_default(),
            ),
            kvmng_syscalls: kvmng::select::kernel_has_kvmng(),
            load: Load {
                start: loadavg(),
                end: String::new(),
            },
        }
    }

    /// The machine as a markdown table.
    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "| | |\n|---|---|");
        let _ = writeln!(s, "| CPU | {} |", self.cpu_model);
        let _ = writeln!(s, "| logical CPUs | {} |", self.cpus);
        if self.cpu_mhz > 0.0 {
            let _ = writeln!(s, "| CPU clock (/proc/cpuinfo) | {:.0} MHz |", self.cpu_mhz);
        }
        let _ = writeln!(s, "| memory | {:.1} GiB |", self.memory_gib);
        let _ = writeln!(s, "| kernel | {} |", self.kernel);
        let _ = writeln!(s, "| KVM | {} |", self.kvm);
        let _ = writeln!(
            s,
            "| kvmng syscalls | {} |",
            if self.kvmng_syscalls {
                "present (kvmng_run(~0) answers EINVAL)"
            } else {
                "absent (kvmng_run(~0) answers ENOSYS): stock kernel"
            }
        );
        if !self.load.start.is_empty() {
            let _ = writeln!(
                s,
                "| load average (1, 5, 15 min) | {} at the start, {} at the end, on {} CPUs |",
                self.load.start,
                if self.load.end.is_empty() {
                    "?"
                } else {
                    &self.load.end
                },
                self.cpus
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_flag_decides_when_both_vendor_modules_are_built_in() {
        let both = ["kvm", "kvm_intel", "kvm_amd"];
        assert_eq!(Virt::detect(&both, "fpu svm hypervisor"), Virt::Svm);
        assert_eq!(Virt::detect(&both, "fpu vmx"), Virt::Vmx);
        assert_eq!(Virt::detect(&both, "fpu"), Virt::Unknown);
        assert_eq!(Virt::detect(&["kvm", "kvm_intel"], ""), Virt::Vmx);
        assert_eq!(
            Virt::detect(&["kvm", "kvm_pvm", "kvm_intel"], "vmx"),
            Virt::Pvm
        );
        assert_eq!(kvm_flavour(&both, "svm"), "kvm_amd (hardware SVM)");
    }
}
