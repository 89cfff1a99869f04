//! The divergences the fuzzer found, kept as fixed cases: each runs on a
//! fresh pair of VMs and must give the same result both ways.

use crate::exec;
use crate::gen::{Arg, Corpus, Op, Target};
use crate::round;
use kvmng_abi::ioctls;

/// The cases: (what it was, irqchip, the operation).
fn cases() -> Vec<(&'static str, bool, Op)> {
    vec![(
        "KVM_RUN with a non-zero argument: EINVAL, not a run (the shim ran the vCPU)",
        false,
        Op {
            target: Target::Vcpu,
            cmd: ioctls::KVM_RUN,
            arg: Arg::Int(1),
        },
    )]
}

/// Runs every case; returns (cases, failures).
pub fn run() -> (usize, usize) {
    let all = cases();
    let mut failed = 0;
    for (what, irqchip, op) in &all {
        let outcome = round::bench(*irqchip)
            .map_err(|e| format!("setup: {e}"))
            .and_then(|mut b| {
                exec::run(&mut b, op, &mut Corpus::default()).map_err(|d| d.to_string())
            });
        match outcome {
            Ok(()) => println!("  ok    {what}"),
            Err(e) => {
                failed += 1;
                println!("  FAIL  {what}: {} -> {e}", exec::describe(op));
            }
        }
    }
    (all.len(), failed)
}
