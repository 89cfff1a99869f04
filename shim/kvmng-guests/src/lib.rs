//! Tiny guest programs for kvmng tests, the CLI demo and benchmarks.
//!
//! Each guest is a flat binary assembled at build time from
//! `shim/kvmng-guests/asm/<name>.S` (see that directory's README.md). It is
//! loaded at guest physical address [`LOAD_ADDR`] and starts at its first
//! byte; every guest begins with `cli` (0xFA).
//!
//! # Guest physical memory layout
//!
//! | GPA                     | use                                               |
//! |-------------------------|---------------------------------------------------|
//! | `0x0000..0x0400`        | real-mode IVT (written by the irq guests)         |
//! | `0x0500..0x1000`        | stack, [`STACK_TOP`] = 0x1000, grows down         |
//! | `0x1000..0x8000`        | guest code ([`LOAD_ADDR`], at most [`MAX_CODE_SIZE`]) |
//! | `0x8000`, `0x8008`      | map_check [`STOP_FLAG_GPA`], [`COUNTER_GPA`]      |
//! | `0x9000`/`0xA000`/`0xB000` | long mode PML4 / PDPT / PD ([`long_mode`])     |
//! | `0xC000..0xC018`        | long mode GDT ([`long_mode::GDT_GPA`])            |
//! | `0xD000..0x10000`       | free                                              |
//! | `0xD0000`               | [`MMIO_REAL`]: must NOT be backed by a memslot    |
//! | `0x20_0000`, `0x40_0000`| map_check slots A and B, 2 MiB each               |
//! | `0x1000_0000`           | [`MMIO_LONG`]: must NOT be backed by a memslot    |
//!
//! A host normally backs `[0, LOW_MEM_SIZE)` with one memslot (slot 0) and
//! nothing else (plus slots A and B for map_check).

#![forbid(unsafe_code)]

#[cfg(feature = "boot")]
pub mod boot;

/// Guest physical address where a guest's first byte is loaded; execution
/// starts there (real mode: CS selector 0, base 0, IP 0x1000).
pub const LOAD_ADDR: u64 = 0x1000;
/// Largest guest code size: code must end below [`STOP_FLAG_GPA`].
pub const MAX_CODE_SIZE: usize = 0x7000;
/// Initial stack pointer (SP in real mode with SS=0, RSP in long mode).
/// The stack occupies `0x500..0x1000`, above the real-mode IVT.
pub const STACK_TOP: u64 = 0x1000;
/// Recommended size of the low memory slot at GPA 0. It covers the IVT,
/// stack, code, map_check variables, page tables and GDT, and stays below
/// [`MMIO_REAL`].
pub const LOW_MEM_SIZE: u64 = 0x1_0000;

/// 8-bit OUT: one byte of console text.
pub const CONSOLE_PORT: u16 = 0xE9;
/// 32-bit OUT: a value the test checks.
pub const REPORT_PORT: u16 = 0x10;
/// 32-bit OUT: the guest detected a failure (value: guest specific).
pub const FAIL_PORT: u16 = 0x11;
/// 32-bit OUT: the guest finished its work (value: guest specific).
pub const DONE_PORT: u16 = 0x12;
/// 8-bit OUT: an interrupt handler reports its vector.
pub const IRQ_PORT: u16 = 0x13;
/// 8-bit OUT: the NMI handler reports vector 2.
pub const NMI_PORT: u16 = 0x14;

/// MMIO address used by real-mode guests (unbacked: accesses exit with
/// `KVM_EXIT_MMIO`).
pub const MMIO_REAL: u64 = 0xD0000;
/// MMIO address used by long-mode guests (unbacked, inside the 1 GiB
/// identity map).
pub const MMIO_LONG: u64 = 0x1000_0000;

/// map_check: the guest stops when the host makes this qword nonzero.
pub const STOP_FLAG_GPA: u64 = 0x8000;
/// map_check: the guest increments this qword once per iteration.
pub const COUNTER_GPA: u64 = 0x8008;
/// map_check: memslot A (2 MiB); the guest reads its first qword.
pub const SLOT_A_GPA: u64 = 0x20_0000;
/// map_check: memslot B (2 MiB); the guest reads its first qword.
pub const SLOT_B_GPA: u64 = 0x40_0000;
/// map_check: size of each of slots A and B.
pub const SLOT_SIZE: u64 = 0x20_0000;

/// Value `real_pio` reports on [`REPORT_PORT`].
pub const REAL_PIO_REPORT: u32 = 0x600D_F00D;
/// Text `real_pio` writes to [`CONSOLE_PORT`].
pub const REAL_PIO_TEXT: &str = "kvmng real mode\n";
/// Value `long_pio` reports on [`REPORT_PORT`].
pub const LONG_PIO_REPORT: u32 = 0x6464_6464;
/// Text `long_pio` writes to [`CONSOLE_PORT`].
pub const LONG_PIO_TEXT: &str = "kvmng long mode\n";
/// Value `real_mmio` writes (16 bits) to [`MMIO_REAL`].
pub const REAL_MMIO_WRITE: u16 = 0x1234;
/// Value `long_mmio` writes (64 bits) to [`MMIO_LONG`].
pub const LONG_MMIO_WRITE: u64 = 0x1122_3344_5566_7788;
/// Offset from the MMIO base of the 32-bit read done by the mmio guests.
pub const MMIO_READ_OFFSET: u64 = 8;
/// Value the irq guests report on [`REPORT_PORT`] once they are ready.
pub const IRQ_READY: u32 = 1;
/// Vector `irq_real` expects to be injected with `KVM_INTERRUPT`.
pub const IRQ_REAL_VECTOR: u8 = 0x20;
/// Vector of IRQ1 after `irq_pic` programs the master PIC (base 0x20).
pub const IRQ_PIC_VECTOR: u8 = 0x21;
/// GSI the host raises for `irq_pic` (IRQ1 of the master PIC).
pub const IRQ_PIC_GSI: u32 = 1;
/// First of the 4 ports `ioregion_regs` accesses (a device serves them).
pub const IOREGION_PORT: u16 = 0x700;
/// What `ioregion_regs` reports, in order, when the device behind
/// [`MMIO_LONG`] and [`IOREGION_PORT`] is a register file: the 1, 2, 4 and
/// (two halves of the) 8-byte values it wrote and read back, then the
/// 2-byte IN of the upper half of its 4-byte OUT.
pub const IOREGION_REGS_REPORTS: [u32; 6] =
    [0x11, 0x2222, 0x3333_3333, 0x5555_5555, 0x4444_4444, 0x6666];

macro_rules! guest_bin {
    ($name:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/", $name, ".bin"))
    };
}

/// Real mode: "kvmng real mode\n" on the console, REPORT 0x600DF00D, HLT.
pub const REAL_PIO: &[u8] = guest_bin!("real_pio");
/// Real mode: 16-bit MMIO write of 0x1234 at [`MMIO_REAL`], 32-bit MMIO read
/// at `MMIO_REAL + 8`, REPORT of the value read, HLT.
pub const REAL_MMIO: &[u8] = guest_bin!("real_mmio");
/// Long mode: "kvmng long mode\n" on the console, REPORT 0x64646464, HLT.
pub const LONG_PIO: &[u8] = guest_bin!("long_pio");
/// Long mode: 64-bit MMIO write of 0x1122334455667788 at [`MMIO_LONG`],
/// 32-bit MMIO read at `MMIO_LONG + 8`, REPORT of the value read, HLT.
pub const LONG_MMIO: &[u8] = guest_bin!("long_mmio");
/// Real mode: endless `out REPORT_PORT, eax; inc eax` from eax = 0.
pub const PIO_LOOP: &[u8] = guest_bin!("pio_loop");
/// Real mode: endless 32-bit MMIO writes of eax = 0, 1, 2, ... to [`MMIO_REAL`].
pub const MMIO_LOOP: &[u8] = guest_bin!("mmio_loop");
/// Long mode: compares the first qwords of slots A and B in a loop (see the
/// README); FAIL on a mismatch, DONE with the iteration count when stopped.
pub const MAP_CHECK: &[u8] = guest_bin!("map_check");
/// Real mode, userspace irqchip: vector 0x20 -> IRQ_PORT 0x20, NMI ->
/// NMI_PORT 2; REPORT 1 when ready, then `sti` and `hlt` in a loop.
pub const IRQ_REAL: &[u8] = guest_bin!("irq_real");
/// Real mode, in-kernel irqchip: programs the master PIC (IRQ1 -> vector
/// 0x21, only IRQ1 unmasked); vector 0x21 -> IRQ_PORT 0x21 + EOI; REPORT 1
/// when ready, then `sti` and `hlt` in a loop.
pub const IRQ_PIC: &[u8] = guest_bin!("irq_pic");
/// Long mode: writes 1, 2, 4, 8 bytes to a register file at [`MMIO_LONG`]
/// (+0, +8, +16, +24), reads each back and reports it; OUT 4 bytes to
/// [`IOREGION_PORT`], IN 2 bytes from `IOREGION_PORT + 2`, reports it; DONE 0,
/// HLT. See [`IOREGION_REGS_REPORTS`].
pub const IOREGION_REGS: &[u8] = guest_bin!("ioregion_regs");
/// Long mode, several vCPUs: with RBX = index and RCX = iterations, writes
/// `index << 32 | i` to `MMIO_LONG + 8 * index` and reads it back, RCX
/// times; FAIL (low half read) on a mismatch, else DONE = RCX; HLT.
pub const IOREGION_SMP: &[u8] = guest_bin!("ioregion_smp");
/// Long mode: RCX 4-byte accesses to the address in RSI (writes of 0, 1,
/// ... when RDI = 0, reads otherwise), then DONE and HLT: the benchmark
/// loop.
pub const MMIO_BENCH: &[u8] = guest_bin!("mmio_bench");

/// CPU mode a guest expects at entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Real mode: use [`real_mode_sregs`].
    Real,
    /// 64-bit long mode: use [`long_mode::write_identity_page_tables`] and
    /// [`long_mode::long_mode_sregs`].
    Long,
}

/// A guest program and how to start it.
#[derive(Debug, Clone, Copy)]
pub struct Guest {
    /// Name (the source file's stem, e.g. "real_pio").
    pub name: &'static str,
    /// Flat binary, to be copied to [`LOAD_ADDR`].
    pub code: &'static [u8],
    /// Mode at entry.
    pub mode: Mode,
    /// Whether the guest needs an in-kernel irqchip (`KVM_CREATE_IRQCHIP`).
    pub irqchip: bool,
}

/// Every guest.
pub const ALL: &[Guest] = &[
    Guest {
        name: "real_pio",
        code: REAL_PIO,
        mode: Mode::Real,
        irqchip: false,
    },
    Guest {
        name: "real_mmio",
        code: REAL_MMIO,
        mode: Mode::Real,
        irqchip: false,
    },
    Guest {
        name: "long_pio",
        code: LONG_PIO,
        mode: Mode::Long,
        irqchip: false,
    },
    Guest {
        name: "long_mmio",
        code: LONG_MMIO,
        mode: Mode::Long,
        irqchip: false,
    },
    Guest {
        name: "pio_loop",
        code: PIO_LOOP,
        mode: Mode::Real,
        irqchip: false,
    },
    Guest {
        name: "mmio_loop",
        code: MMIO_LOOP,
        mode: Mode::Real,
        irqchip: false,
    },
    Guest {
        name: "map_check",
        code: MAP_CHECK,
        mode: Mode::Long,
        irqchip: false,
    },
    Guest {
        name: "irq_real",
        code: IRQ_REAL,
        mode: Mode::Real,
        irqchip: false,
    },
    Guest {
        name: "irq_pic",
        code: IRQ_PIC,
        mode: Mode::Real,
        irqchip: true,
    },
    Guest {
        name: "ioregion_regs",
        code: IOREGION_REGS,
        mode: Mode::Long,
        irqchip: false,
    },
    Guest {
        name: "ioregion_smp",
        code: IOREGION_SMP,
        mode: Mode::Long,
        irqchip: false,
    },
    Guest {
        name: "mmio_bench",
        code: MMIO_BENCH,
        mode: Mode::Long,
        irqchip: false,
    },
];

/// Looks a guest up by name.
pub fn by_name(name: &str) -> Option<&'static Guest> {
    ALL.iter().find(|g| g.name == name)
}

pub use long_mode::{initial_regs, real_mode_sregs};

/// CPU state setup for the guests: long mode page tables, GDT and special
/// registers, real mode special registers and initial general registers.
pub mod long_mode {
    use kvm_bindings::{kvm_regs, kvm_segment, kvm_sregs};

    /// PML4 (one entry used, pointing at [`PDPT_GPA`]).
    pub const PML4_GPA: u64 = 0x9000;
    /// PDPT (one entry used, pointing at [`PD_GPA`]).
    pub const PDPT_GPA: u64 = 0xA000;
    /// Page directory: 512 entries of 2 MiB pages.
    pub const PD_GPA: u64 = 0xB000;
    /// Size of the identity map starting at GPA 0 (1 GiB).
    pub const IDENTITY_MAP_SIZE: u64 = 1 << 30;
    /// GDT: null descriptor, 64-bit code at 0x08, data at 0x10.
    pub const GDT_GPA: u64 = 0xC000;
    /// GDT limit (3 descriptors).
    pub const GDT_LIMIT: u16 = 3 * 8 - 1;
    /// 64-bit code segment selector.
    pub const CODE64_SELECTOR: u16 = 0x08;
    /// Flat data segment selector.
    pub const DATA_SELECTOR: u16 = 0x10;
    /// The GDT entries written at [`GDT_GPA`].
    pub const GDT: [u64; 3] = [
        0,
        0x00AF_9B00_0000_FFFF, // code: P, DPL0, S, type 0xB (exec/read, accessed), G, L
        0x00CF_9300_0000_FFFF, // data: P, DPL0, S, type 0x3 (read/write, accessed), G, D/B
    ];
    /// End (exclusive) of everything [`write_identity_page_tables`] writes.
    pub const TABLES_END: u64 = GDT_GPA + GDT.len() as u64 * 8;

    /// CR0.PE
    pub const CR0_PE: u64 = 1 << 0;
    /// CR0.MP
    pub const CR0_MP: u64 = 1 << 1;
    /// CR0.ET
    pub const CR0_ET: u64 = 1 << 4;
    /// CR0.NE
    pub const CR0_NE: u64 = 1 << 5;
    /// CR0.WP
    pub const CR0_WP: u64 = 1 << 16;
    /// CR0.PG
    pub const CR0_PG: u64 = 1 << 31;
    /// CR4.PAE
    pub const CR4_PAE: u64 = 1 << 5;
    /// EFER.LME
    pub const EFER_LME: u64 = 1 << 8;
    /// EFER.LMA
    pub const EFER_LMA: u64 = 1 << 10;

    const PTE_P: u64 = 1 << 0;
    const PTE_RW: u64 = 1 << 1;
    const PTE_PS: u64 = 1 << 7;

    fn put_u64(mem: &mut [u8], base_gpa: u64, gpa: u64, val: u64) {
        let off = usize::try_from(gpa - base_gpa).expect("offset fits usize");
        mem[off..off + 8].copy_from_slice(&val.to_le_bytes());
    }

    /// Writes 4-level page tables identity-mapping `[0, 1 GiB)` with 2 MiB
    /// pages (PML4 at [`PML4_GPA`], PDPT at [`PDPT_GPA`], PD at [`PD_GPA`],
    /// all present + writable, supervisor) and the [`GDT`] at [`GDT_GPA`],
    /// i.e. everything in guest memory that [`long_mode_sregs`] relies on.
    ///
    /// `mem` is the host view of guest memory starting at guest physical
    /// address `base_gpa` (normally 0, the low memory slot).
    ///
    /// # Panics
    ///
    /// If `mem` does not cover `[PML4_GPA, TABLES_END)`.
    pub fn write_identity_page_tables(mem: &mut [u8], base_gpa: u64) {
        assert!(
            base_gpa <= PML4_GPA && base_gpa + mem.len() as u64 >= TABLES_END,
            "guest memory [{base_gpa:#x}, {:#x}) does not cover the page tables and GDT \
             [{PML4_GPA:#x}, {TABLES_END:#x})",
            base_gpa + mem.len() as u64
        );
        let pml4_off = (PML4_GPA - base_gpa) as usize;
        mem[pml4_off..pml4_off + 3 * 4096].fill(0);
        put_u64(mem, base_gpa, PML4_GPA, PDPT_GPA | PTE_P | PTE_RW);
        put_u64(mem, base_gpa, PDPT_GPA, PD_GPA | PTE_P | PTE_RW);
        for i in 0..512u64 {
            put_u64(
                mem,
                base_gpa,
                PD_GPA + i * 8,
                (i << 21) | PTE_P | PTE_RW | PTE_PS,
            );
        }
        for (i, d) in GDT.iter().enumerate() {
            put_u64(mem, base_gpa, GDT_GPA + i as u64 * 8, *d);
        }
    }

    fn flat_segment(selector: u16, type_: u8, long: bool) -> kvm_segment {
        kvm_segment {
            base: 0,
            limit: 0xFFFF_FFFF,
            selector,
            type_,
            present: 1,
            dpl: 0,
            db: u8::from(!long),
            s: 1,
            l: u8::from(long),
            g: 1,
            avl: 0,
            unusable: 0,
            padding: 0,
        }
    }

    /// Puts `sregs` (normally from `KVM_GET_SREGS` on a fresh vCPU) in 64-bit
    /// long mode with paging: CR0 = PE|MP|ET|NE|WP|PG, CR3 = [`PML4_GPA`],
    /// CR4 |= PAE, EFER |= LME|LMA, CS = [`CODE64_SELECTOR`] (L=1), DS, ES,
    /// FS, GS, SS = [`DATA_SELECTOR`] (flat), GDTR = [`GDT_GPA`] /
    /// [`GDT_LIMIT`]. TR, LDTR and IDTR are left as they are (the guests take
    /// no interrupts in long mode). Memory must have been prepared with
    /// [`write_identity_page_tables`].
    pub fn long_mode_sregs(sregs: &mut kvm_sregs) {
        sregs.cr0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG;
        sregs.cr3 = PML4_GPA;
        sregs.cr4 |= CR4_PAE;
        sregs.efer |= EFER_LME | EFER_LMA;
        sregs.cs = flat_segment(CODE64_SELECTOR, 0xB, true);
        let data = flat_segment(DATA_SELECTOR, 0x3, false);
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.gdt.base = GDT_GPA;
        sregs.gdt.limit = GDT_LIMIT;
    }

    fn real_segment(type_: u8) -> kvm_segment {
        kvm_segment {
            base: 0,
            limit: 0xFFFF,
            selector: 0,
            type_,
            present: 1,
            dpl: 0,
            db: 0,
            s: 1,
            l: 0,
            g: 0,
            avl: 0,
            unusable: 0,
            padding: 0,
        }
    }

    /// Puts `sregs` (normally from `KVM_GET_SREGS` on a fresh vCPU) in real
    /// mode with every segment at selector 0, base 0, limit 0xFFFF (so
    /// execution starts at physical `RIP`), CR0.PE/PG, CR4.PAE and
    /// EFER.LME/LMA cleared, and the IDTR at the real-mode IVT (base 0,
    /// limit 0x3FF).
    pub fn real_mode_sregs(sregs: &mut kvm_sregs) {
        sregs.cs = real_segment(0xB);
        let data = real_segment(0x3);
        sregs.ds = data;
        sregs.es = data;
        sregs.fs = data;
        sregs.gs = data;
        sregs.ss = data;
        sregs.cr0 &= !(CR0_PE | CR0_PG);
        sregs.cr4 &= !CR4_PAE;
        sregs.efer &= !(EFER_LME | EFER_LMA);
        sregs.idt.base = 0;
        sregs.idt.limit = 0x3FF;
    }

    /// General registers to start a guest at `entry` (normally
    /// [`LOAD_ADDR`](crate::LOAD_ADDR)): RIP = `entry`, RSP =
    /// [`STACK_TOP`](crate::STACK_TOP), RFLAGS = 2 (reserved bit 1 only,
    /// interrupts disabled), everything else 0.
    pub fn initial_regs(entry: u64) -> kvm_regs {
        kvm_regs {
            rip: entry,
            rsp: crate::STACK_TOP,
            rflags: 2,
            ..Default::default()
        }
    }
}

// The memory layout documented above, checked at compile time.
const _: () = {
    use long_mode::{IDENTITY_MAP_SIZE, PML4_GPA, TABLES_END};
    assert!(STACK_TOP <= LOAD_ADDR);
    assert!(LOAD_ADDR + MAX_CODE_SIZE as u64 <= STOP_FLAG_GPA);
    assert!(COUNTER_GPA + 8 <= PML4_GPA);
    assert!(TABLES_END <= LOW_MEM_SIZE);
    assert!(LOW_MEM_SIZE <= MMIO_REAL);
    assert!(LOW_MEM_SIZE <= SLOT_A_GPA);
    assert!(SLOT_A_GPA + SLOT_SIZE <= SLOT_B_GPA);
    assert!(MMIO_LONG < IDENTITY_MAP_SIZE && MMIO_LONG >= SLOT_B_GPA + SLOT_SIZE);
};

#[cfg(test)]
mod tests {
    use super::long_mode::*;
    use super::*;

    const CONVENTIONS: &str = include_str!("../asm/conventions.inc");

    fn parse_int(s: &str) -> u64 {
        match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
            None => s.parse().unwrap(),
        }
    }

    #[test]
    fn conventions_inc_matches_rust_constants() {
        let rust: &[(&str, u64)] = &[
            ("LOAD_ADDR", LOAD_ADDR),
            ("STACK_TOP", STACK_TOP),
            ("CONSOLE_PORT", CONSOLE_PORT.into()),
            ("REPORT_PORT", REPORT_PORT.into()),
            ("FAIL_PORT", FAIL_PORT.into()),
            ("DONE_PORT", DONE_PORT.into()),
            ("IRQ_PORT", IRQ_PORT.into()),
            ("NMI_PORT", NMI_PORT.into()),
            ("MMIO_REAL", MMIO_REAL),
            ("MMIO_LONG", MMIO_LONG),
            ("STOP_FLAG_GPA", STOP_FLAG_GPA),
            ("COUNTER_GPA", COUNTER_GPA),
            ("SLOT_A_GPA", SLOT_A_GPA),
            ("SLOT_B_GPA", SLOT_B_GPA),
            ("PIC1_CMD", 0x20),
            ("PIC1_DATA", 0x21),
            ("IOREGION_PORT", IOREGION_PORT.into()),
        ];
        let mut seen = 0;
        for line in CONVENTIONS.lines() {
            let Some(rest) = line.trim().strip_prefix(".equ") else {
                continue;
            };
            let rest = rest.split("/*").next().unwrap();
            let (name, value) = rest.split_once(',').expect(".equ NAME, VALUE");
            let (name, value) = (name.trim(), parse_int(value.trim()));
            let (_, expected) = rust
                .iter()
                .find(|(n, _)| *n == name)
                .unwrap_or_else(|| panic!("{name} in conventions.inc has no Rust constant"));
            assert_eq!(value, *expected, "{name}");
            seen += 1;
        }
        assert_eq!(seen, rust.len());
    }

    #[test]
    fn guests_start_with_cli_and_fit() {
        assert_eq!(ALL.len(), 12);
        for g in ALL {
            assert_eq!(
                g.code.first(),
                Some(&0xFA),
                "{} must start with cli",
                g.name
            );
            assert!(g.code.len() <= MAX_CODE_SIZE, "{} too big", g.name);
            assert_eq!(by_name(g.name).unwrap().code, g.code);
        }
        let text = |code: &[u8], s: &str| code.windows(s.len()).any(|w| w == s.as_bytes());
        assert!(text(REAL_PIO, REAL_PIO_TEXT));
        assert!(text(LONG_PIO, LONG_PIO_TEXT));
    }

    #[test]
    fn every_source_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/asm");
        let mut sources: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".S").map(str::to_string)
            })
            .collect();
        sources.sort();
        let mut listed: Vec<String> = ALL.iter().map(|g| g.name.to_string()).collect();
        listed.sort();
        assert_eq!(sources, listed);
    }

    #[test]
    fn page_tables() {
        let mut mem = vec![0xFFu8; LOW_MEM_SIZE as usize];
        write_identity_page_tables(&mut mem, 0);
        let rd =
            |gpa: u64| u64::from_le_bytes(mem[gpa as usize..gpa as usize + 8].try_into().unwrap());
        assert_eq!(rd(PML4_GPA), PDPT_GPA | 3);
        assert_eq!(rd(PML4_GPA + 8), 0);
        assert_eq!(rd(PDPT_GPA), PD_GPA | 3);
        assert_eq!(rd(PDPT_GPA + 8), 0);
        assert_eq!(rd(PD_GPA), 0x83);
        assert_eq!(rd(PD_GPA + 511 * 8), (511 << 21) | 0x83);
        assert_eq!(rd(GDT_GPA + 8), GDT[1]);
        assert_eq!(mem[TABLES_END as usize], 0xFF);

        // Non-zero base.
        let mut mem = vec![0u8; 0x8000];
        write_identity_page_tables(&mut mem, 0x8000);
        assert_eq!(mem[0x1000..0x1008], (PDPT_GPA | 3).to_le_bytes());
    }

    #[test]
    #[should_panic(expected = "does not cover")]
    fn page_tables_need_memory() {
        write_identity_page_tables(&mut [0u8; 0x9000], 0);
    }

    #[test]
    fn sregs() {
        let mut s = kvm_bindings::kvm_sregs::default();
        long_mode_sregs(&mut s);
        assert_eq!(s.efer & (EFER_LME | EFER_LMA), EFER_LME | EFER_LMA);
        assert_eq!((s.cs.l, s.cs.db, s.cs.selector), (1, 0, CODE64_SELECTOR));
        real_mode_sregs(&mut s);
        assert_eq!(s.cr0 & (CR0_PE | CR0_PG), 0);
        assert_eq!(s.efer, 0);
        assert_eq!((s.cs.base, s.cs.selector, s.cs.l), (0, 0, 0));
        let r = initial_regs(LOAD_ADDR);
        assert_eq!((r.rip, r.rsp, r.rflags), (0x1000, STACK_TOP, 2));
    }
}
