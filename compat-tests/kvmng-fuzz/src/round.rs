//! One round: a fresh pair of VMs and a fixed number of operations, all
//! drawn from the round's seed, so that a round is reproduced by its seed.

use crate::arena::Arena;
use crate::exec::{self, Bench};
use crate::gen::{self, Corpus};
use crate::pair::Pair;
use crate::rng::Rng;
use crate::side::{ioctl, Path};
use kvmng_abi::ioctls;
use std::sync::atomic::{AtomicU64, Ordering};

/// Opens what a bench needs and builds its pair (in-kernel irqchip or not,
/// as `irqchip` says).
pub fn bench(irqchip: bool) -> Result<Bench, String> {
    let open = |p: &std::ffi::CStr| {
        // SAFETY: a NUL-terminated path.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if fd < 0 {
            Err(format!("open {p:?}: {}", std::io::Error::last_os_error()))
        } else {
            Ok(fd)
        }
    };
    let kvm = open(c"/dev/kvm")?;
    let devnull = open(c"/dev/null")?;
    let pair = Pair::build(kvm, irqchip)?;
    Ok(Bench {
        pair,
        arena_a: Arena::new().map_err(|e| e.to_string())?,
        arena_b: Arena::new().map_err(|e| e.to_string())?,
        kvm,
        devnull,
    })
}

/// The MSR indices KVM saves and restores (KVM_GET_MSR_INDEX_LIST).
fn msr_indices(kvm: i32) -> Vec<u32> {
    let mut buf = vec![0u32; 1 + 1024];
    buf[0] = 1024;
    // SAFETY: a struct kvm_msr_list with room for 1024 indices.
    let o = unsafe {
        ioctl(
            Path::Raw,
            kvm,
            ioctls::KVM_GET_MSR_INDEX_LIST,
            buf.as_mut_ptr() as u64,
        )
    };
    if o.ret < 0 {
        return Vec::new();
    }
    let n = (buf[0] as usize).min(1024);
    buf[1..1 + n].to_vec()
}

/// Runs round `seed` of `ops` operations; `progress` gets the index of the
/// operation under way (for a supervisor that finds this round hung).
/// Returns the number of operations done, or the report of the first
/// divergence.
pub fn run(seed: u64, ops: u64, progress: &AtomicU64, verbose: bool) -> Result<u64, String> {
    let mut rng = Rng::new(seed);
    let mut b = bench(rng.chance(50))?;
    let mut corpus = Corpus::default();
    corpus.msr_indices = msr_indices(b.kvm);
    for i in 0..ops {
        progress.store(i, Ordering::Relaxed);
        let op = gen::op(&mut rng, &corpus);
        if verbose {
            eprint!("op {i}: {}", exec::describe(&op));
        }
        let t = std::time::Instant::now();
        let result = exec::run(&mut b, &op, &mut corpus);
        if verbose {
            eprintln!(" [{} us]", t.elapsed().as_micros());
        }
        if let Err(d) = result {
            return Err(format!(
                "DIVERGENCE in round seed {seed:#x}, op {i}: {}\n  {d}",
                exec::describe(&op)
            ));
        }
    }
    Ok(ops)
}
