//! The MMIO delivery harness (`kvmng_bench::dispatch`) runs its four ways
//! on /dev/kvm, and an ioeventfd write costs less than an exit.

use kvmng_bench::dispatch::{self, Way};

#[test]
fn the_dispatch_benchmark_runs() {
    let kvm = match kvmng::Kvmng::open() {
        Ok(kvm) => kvm,
        Err(kvmng::OpenError::Device(e)) => {
            eprintln!("SKIPPED: the_dispatch_benchmark_runs: /dev/kvm not available: {e}");
            return;
        }
        Err(e) => panic!("cannot choose a backend: {e}"),
    };
    // KVMNG_IOREGION_BENCH="accesses,batches" for real figures (release).
    let (accesses, batches) = std::env::var("KVMNG_IOREGION_BENCH")
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((200u64, 5usize));
    let result = dispatch::ioregion_dispatch(&kvm, accesses, batches).unwrap();
    eprintln!("{result}");
    assert_eq!(result.series.len(), 4);
    for s in &result.series {
        assert_eq!(s.ns_per_access.len(), batches);
        assert!(s.median() > 0.0 && s.median().is_finite(), "{s:?}");
    }
    assert!(
        result.of(Way::Ioeventfd).median() < result.of(Way::MmioExit).median(),
        "an ioeventfd write costs no exit"
    );
}
