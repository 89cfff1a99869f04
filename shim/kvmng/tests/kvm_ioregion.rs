//! kvmng_ioregion (docs/api.md 5.10): guest MMIO and port accesses served
//! by a device thread over an AF_UNIX SOCK_SEQPACKET socket, without an
//! exit to the caller of kvmng_run; several vCPUs on one socket; posted
//! writes; the failure semantics (EPIPE, EBADMSG, EINTR and the retry);
//! every errno of the registration (the dispatch benchmark is in
//! shim/kvmng-bench/tests/kvm_dispatch.rs).

mod support;

use kvmng::ioregion::{self, IoRegion, RegisterFile, Request};
use kvmng::{BoundVcpu, Errno, VcpuExit};
use kvmng_abi::*;
use kvmng_guests::boot::GuestVm;
use kvmng_guests::*;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicPtr, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REGS_SIZE: u64 = 32;
const MMIO_USER_DATA: u64 = 0x4D4D_494F;
const PIO_USER_DATA: u64 = 0x5049_4F00;

fn guest(name: &str) -> &'static Guest {
    by_name(name).unwrap_or_else(|| panic!("guest {name} missing"))
}

/// What `run_until_done` saw: the values on REPORT_PORT, the DONE value,
/// and every other exit, by its Debug text.
#[derive(Debug, Default)]
struct Outcome {
    reports: Vec<u32>,
    done: Option<u32>,
    fail: Option<u32>,
    other_exits: Vec<String>,
}

fn value(data: &[u8]) -> u32 {
    let mut b = [0u8; 4];
    let n = data.len().min(4);
    b[..n].copy_from_slice(&data[..n]);
    u32::from_le_bytes(b)
}

/// Runs until DONE or FAIL (or an error), at most `max` exits.
fn run_until_done(vcpu: &mut BoundVcpu<'_>, max: usize) -> Result<Outcome, Errno> {
    let mut o = Outcome::default();
    for _ in 0..max {
        match vcpu.run()? {
            VcpuExit::IoOut { port, data, .. } if port == REPORT_PORT => {
                o.reports.push(value(data))
            }
            VcpuExit::IoOut { port, data, .. } if port == DONE_PORT => {
                o.done = Some(value(data));
                return Ok(o);
            }
            VcpuExit::IoOut { port, data, .. } if port == FAIL_PORT => {
                o.fail = Some(value(data));
                return Ok(o);
            }
            other => o.other_exits.push(format!("{other:?}")),
        }
    }
    panic!("no DONE within {max} exits: {o:?}");
}

/// A device thread serving a register file per `user_data`, logging every
/// request. Joining it returns the log once the VM side is closed.
struct Device {
    log: Arc<Mutex<Vec<Request>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Device {
    fn register_files(fd: OwnedFd) -> Device {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let thread = std::thread::spawn(move || {
            let mut files: std::collections::BTreeMap<u64, RegisterFile> = Default::default();
            ioregion::serve(fd.as_fd(), |r| {
                l.lock().unwrap().push(*r);
                files
                    .entry(r.user_data)
                    .or_insert_with(|| RegisterFile::new(4096))
                    .access(r)
            })
            .unwrap();
        });
        Device { log, thread }
    }

    fn join(self) -> Vec<Request> {
        self.thread.join().unwrap();
        Arc::try_unwrap(self.log).unwrap().into_inner().unwrap()
    }
}

#[test]
fn a_device_thread_serves_a_register_file_without_exits() {
    let Some(env) = support::env("a_device_thread_serves_a_register_file_without_exits") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let device = Device::register_files(dev);
    let mmio = IoRegion::mmio(MMIO_LONG, REGS_SIZE, vmm.as_raw_fd()).with_user_data(MMIO_USER_DATA);
    let pio = IoRegion::pio(IOREGION_PORT, 4, vmm.as_raw_fd()).with_user_data(PIO_USER_DATA);
    gvm.vm.ioregion_add(&mmio).unwrap();
    gvm.vm.ioregion_add(&pio).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let o = run_until_done(&mut vcpu, 100).unwrap();
    assert_eq!(o.reports, IOREGION_REGS_REPORTS);
    assert_eq!(o.done, Some(0));
    assert!(o.other_exits.is_empty(), "{:?}", o.other_exits);
    drop(vcpu);
    drop(gvm);
    drop(vmm);
    let log = device.join();

    // The device saw every access, in program order, as the spec says.
    let w = |offset, data, len| (offset, data, len, true);
    let r = |offset, len| (offset, 0, len, false);
    let mmio_seen: Vec<_> = log
        .iter()
        .filter(|q| !q.pio)
        .map(|q| (q.offset, q.data, q.len, q.write))
        .collect();
    assert_eq!(
        mmio_seen,
        [
            w(0, 0x11, 1),
            w(8, 0x2222, 2),
            w(16, 0x3333_3333, 4),
            w(24, 0x4444_4444_5555_5555, 8),
            r(0, 1),
            r(8, 2),
            r(16, 4),
            r(24, 8),
        ]
    );
    let pio_seen: Vec<_> = log
        .iter()
        .filter(|q| q.pio)
        .map(|q| (q.offset, q.data, q.len, q.write))
        .collect();
    assert_eq!(pio_seen, [w(0, 0x6666_6666, 4), r(2, 2)]);
    for q in &log {
        assert_eq!(q.vcpu_id, 0);
        assert!(!q.posted);
        let want = if q.pio { PIO_USER_DATA } else { MMIO_USER_DATA };
        assert_eq!(q.user_data, want);
    }
    assert!(
        log.windows(2).all(|p| p[0].id < p[1].id && p[0].id != 0),
        "ids increase: {log:?}"
    );
}

/// The register-file regions of `ioregion_regs` on one socket.
fn regs_regions(fd: i32) -> [IoRegion; 2] {
    [
        IoRegion::mmio(MMIO_LONG, REGS_SIZE, fd).with_user_data(MMIO_USER_DATA),
        IoRegion::pio(IOREGION_PORT, 4, fd).with_user_data(PIO_USER_DATA),
    ]
}

#[test]
#[allow(non_snake_case)]
fn several_vcpus_share_one_socket_at_once() {
    let Some(env) = support::env("several_vcpus_share_one_socket_at_once") else {
        return;
    };
    // KVMNG_IOREGION_STRESS="vcpus,iterations" makes it a stress test.
    let (vcpus, iterations) = std::env::var("KVMNG_IOREGION_STRESS")
        .ok()
        .and_then(|v| {
            let (a, b) = v.split_once(',')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((4u64, 300u64));
    let (VCPUS, ITERATIONS) = (vcpus, iterations);
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_smp")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let device = Device::register_files(dev);
    gvm.vm
        .ioregion_add(&IoRegion::mmio(MMIO_LONG, 8 * VCPUS, vmm.as_raw_fd()))
        .unwrap();
    let outcomes = std::thread::scope(|s| {
        let threads: Vec<_> = (0..VCPUS)
            .map(|i| {
                let gvm = &gvm;
                s.spawn(move || {
                    let mut vcpu = gvm.boot_vcpu_id(i).unwrap();
                    let mut regs = vcpu.regs().unwrap();
                    regs.rbx = i;
                    regs.rcx = ITERATIONS;
                    vcpu.set_regs(&regs).unwrap();
                    run_until_done(&mut vcpu, 10).unwrap()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    for (i, o) in outcomes.iter().enumerate() {
        assert_eq!(o.fail, None, "vCPU {i} read back another value");
        assert_eq!(o.done, Some(ITERATIONS as u32), "vCPU {i}");
        assert!(o.other_exits.is_empty(), "vCPU {i}: {:?}", o.other_exits);
    }
    drop(gvm);
    drop(vmm);
    let log = device.join();
    assert_eq!(log.len() as u64, VCPUS * ITERATIONS * 2);
    for i in 0..VCPUS {
        let mine: Vec<_> = log.iter().filter(|q| u64::from(q.vcpu_id) == i).collect();
        assert_eq!(mine.len() as u64, 2 * ITERATIONS, "vCPU {i}");
        for (k, pair) in mine.chunks(2).enumerate() {
            let want = (i << 32) | k as u64;
            assert!(pair[0].write && pair[0].offset == 8 * i && pair[0].data == want);
            assert!(!pair[1].write && pair[1].offset == 8 * i && pair[1].len == 8);
        }
    }
    let switches = log
        .windows(2)
        .filter(|p| p[0].vcpu_id != p[1].vcpu_id)
        .count();
    eprintln!("requests of different vCPUs interleaved {switches} times");
}

#[test]
fn replies_are_matched_by_id_not_by_order() {
    let Some(env) = support::env("replies_are_matched_by_id_not_by_order") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_smp")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    // The device answers writes at once, but holds reads until both vCPUs
    // have one in flight, then answers them in the reverse order.
    let device = std::thread::spawn(move || {
        let mut regs = RegisterFile::new(64);
        let mut held = Vec::new();
        let mut answered = Vec::new();
        while let Some(r) = ioregion::recv_request(dev.as_fd()).unwrap() {
            let v = regs.access(&r);
            if r.write {
                ioregion::send_reply(dev.as_fd(), r.id, 0).unwrap();
                continue;
            }
            held.push((r, v));
            if held.len() == 2 {
                for (r, v) in held.drain(..).rev() {
                    answered.push(r.vcpu_id);
                    ioregion::send_reply(dev.as_fd(), r.id, v).unwrap();
                }
            }
        }
        answered
    });
    gvm.vm
        .ioregion_add(&IoRegion::mmio(MMIO_LONG, 16, vmm.as_raw_fd()))
        .unwrap();
    let outcomes = std::thread::scope(|s| {
        let threads: Vec<_> = (0..2u64)
            .map(|i| {
                let gvm = &gvm;
                s.spawn(move || {
                    let mut vcpu = gvm.boot_vcpu_id(i).unwrap();
                    let mut regs = vcpu.regs().unwrap();
                    regs.rbx = i;
                    regs.rcx = 1;
                    vcpu.set_regs(&regs).unwrap();
                    run_until_done(&mut vcpu, 10).unwrap()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    });
    for o in &outcomes {
        assert_eq!((o.done, o.fail), (Some(1), None), "{o:?}");
    }
    drop(gvm);
    drop(vmm);
    let answered = device.join().unwrap();
    assert_eq!(answered.len(), 2, "both reads were in flight at once");
}

#[test]
fn posted_writes_do_not_wait_for_the_device() {
    let Some(env) = support::env("posted_writes_do_not_wait_for_the_device") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("mmio_bench")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let (go, wait_go) = mpsc::channel::<Duration>();
    // The device reads nothing until told to, then everything.
    let device = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while let Ok(delay) = wait_go.recv() {
            std::thread::sleep(delay);
            loop {
                match ioregion::recv_request(dev.as_fd()).unwrap() {
                    Some(r) => {
                        seen.push(r);
                        if seen.len() % 1000 == 0 {
                            break;
                        }
                    }
                    None => return seen,
                }
            }
        }
        seen
    });
    gvm.vm
        .ioregion_add(&IoRegion::mmio(MMIO_LONG, 0x1000, vmm.as_raw_fd()).posted())
        .unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    let run = |vcpu: &mut BoundVcpu<'_>, count: u64| {
        let mut regs = long_mode::initial_regs(LOAD_ADDR);
        regs.rsi = MMIO_LONG;
        regs.rcx = count;
        vcpu.set_regs(&regs).unwrap();
        run_until_done(vcpu, 10).unwrap()
    };
    // 100 writes complete while the device reads nothing.
    let o = run(&mut vcpu, 100);
    assert_eq!(o.done, Some(100));
    assert!(o.other_exits.is_empty(), "{:?}", o.other_exits);
    // 5000 more fill the socket: the vCPU waits for room (and the device
    // starts reading only after 100 ms).
    go.send(Duration::ZERO).unwrap();
    for _ in 0..5 {
        go.send(Duration::from_millis(20)).unwrap();
    }
    let o = run(&mut vcpu, 5000);
    assert_eq!(o.done, Some(5000));
    drop(vcpu);
    drop(gvm);
    drop(vmm);
    drop(go);
    let seen = device.join().unwrap();
    assert_eq!(seen.len(), 5100);
    let data: Vec<u64> = seen.iter().map(|r| r.data).collect();
    let want: Vec<u64> = (0..100).chain(0..5000).collect();
    assert_eq!(data, want, "every posted write arrives, in order");
    for r in &seen {
        assert!(r.write && r.posted && !r.pio && r.len == 4 && r.offset == 0);
    }
}

#[test]
fn the_device_closing_gives_epipe_until_the_region_is_deleted() {
    let Some(env) = support::env("the_device_closing_gives_epipe_until_the_region_is_deleted")
    else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    // The device reads the first request and dies without answering.
    let device = std::thread::spawn(move || {
        let r = ioregion::recv_request(dev.as_fd()).unwrap().unwrap();
        drop(dev);
        r
    });
    let [mmio, _] = regs_regions(vmm.as_raw_fd());
    gvm.vm.ioregion_add(&mmio).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    assert_eq!(vcpu.run().err(), Some(Errno(libc::EPIPE)));
    let first = device.join().unwrap();
    assert!(first.write && first.offset == 0 && first.data == 0x11);
    // The access is still pending: the guest did not move.
    assert_eq!(vcpu.run().err(), Some(Errno(libc::EPIPE)));
    assert_eq!(vcpu.run_page().exit_reason, kvm_bindings::KVM_EXIT_MMIO);
    // With the region gone, the access is an ordinary exit.
    gvm.vm.ioregion_del(&mmio).unwrap();
    match vcpu.run().unwrap() {
        VcpuExit::MmioWrite { addr, data } => {
            assert_eq!((addr, data.to_vec()), (MMIO_LONG, vec![0x11]));
        }
        other => panic!("expected the pending write as an exit, got {other:?}"),
    }
    match vcpu.run().unwrap() {
        VcpuExit::MmioWrite { addr, .. } => assert_eq!(addr, MMIO_LONG + 8),
        other => panic!("expected the next write, got {other:?}"),
    }

    // A posted write to a closed device fails the same way.
    let (vmm2, dev2) = ioregion::socket_pair().unwrap();
    drop(dev2);
    gvm.vm
        .ioregion_add(&IoRegion::mmio(MMIO_LONG + 16, 4, vmm2.as_raw_fd()).posted())
        .unwrap();
    assert_eq!(vcpu.run().err(), Some(Errno(libc::EPIPE)));
}

#[test]
fn malformed_replies_give_ebadmsg_and_the_access_is_retried() {
    let Some(env) = support::env("malformed_replies_give_ebadmsg_and_the_access_is_retried") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let device = std::thread::spawn(move || {
        let fd = dev.as_fd();
        let next = || ioregion::recv_request(fd).unwrap().unwrap();
        let mut seen = Vec::new();
        // 1: a reply of the wrong size.
        let r1 = next();
        ioregion::send_raw(fd, &r1.id.to_ne_bytes(), "short").unwrap();
        // 2: data in the reply to a write.
        let r2 = next();
        ioregion::send_reply(fd, r2.id, 5).unwrap();
        // 3: an id that was never sent.
        let r3 = next();
        ioregion::send_reply(fd, r3.id + 1_000_000, 0).unwrap();
        // 4: the late reply to request 3 (abandoned: dropped), then a good one.
        let r4 = next();
        ioregion::send_reply(fd, r3.id, 0).unwrap();
        seen.extend([r1, r2, r3, r4]);
        let mut regs = RegisterFile::new(64);
        regs.access(&r4);
        ioregion::send_reply(fd, r4.id, 0).unwrap();
        ioregion::serve(fd, |r| regs.access(r)).unwrap();
        seen
    });
    let [mmio, _] = regs_regions(vmm.as_raw_fd());
    gvm.vm.ioregion_add(&mmio).unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    for case in ["wrong size", "data for a write", "unknown id"] {
        assert_eq!(vcpu.run().err(), Some(Errno(libc::EBADMSG)), "{case}");
    }
    let o = run_until_done(&mut vcpu, 100).unwrap();
    assert_eq!(&o.reports[..5], &IOREGION_REGS_REPORTS[..5]);
    drop(vcpu);
    drop(gvm);
    drop(vmm);
    let seen = device.join().unwrap();
    // The same access, sent again with a new id each time.
    for r in &seen {
        assert!(r.write && r.offset == 0 && r.data == 0x11 && r.len == 1);
    }
    assert!(seen.windows(2).all(|p| p[0].id < p[1].id));
}

extern "C" fn on_signal(_: i32) {}

static RUN_PAGE: AtomicPtr<kvm_bindings::kvm_run> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn set_immediate_exit(_: i32) {
    let run = RUN_PAGE.load(SeqCst);
    if !run.is_null() {
        // SAFETY: the test keeps the vCPU (and its kvm_run mapping) alive
        // while the signal can come; a byte store is async-signal-safe.
        unsafe { std::ptr::addr_of_mut!((*run).immediate_exit).write_volatile(1) };
    }
}

/// Installs `handler` for `sig`, without SA_RESTART (as KVM users do).
fn install(sig: i32, handler: extern "C" fn(i32)) {
    // SAFETY: a zeroed sigaction with a handler that never unwinds.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as usize;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(sig, &action, std::ptr::null_mut()), 0);
    }
}

/// A device for `ioregion_regs` that reads the first request, reports it
/// on `got`, waits for `go`, answers it (late: it is stale by then) and
/// then serves everything as a register file, logging.
fn stalling_device(
    dev: OwnedFd,
    got: mpsc::Sender<Request>,
    go: mpsc::Receiver<()>,
) -> std::thread::JoinHandle<Vec<Request>> {
    std::thread::spawn(move || {
        let fd = dev.as_fd();
        let first = ioregion::recv_request(fd).unwrap().unwrap();
        got.send(first).unwrap();
        let _ = go.recv();
        let _ = ioregion::send_reply(fd, first.id, 0);
        let mut log = vec![first];
        let mut files: std::collections::BTreeMap<u64, RegisterFile> = Default::default();
        ioregion::serve(fd, |r| {
            log.push(*r);
            files
                .entry(r.user_data)
                .or_insert_with(|| RegisterFile::new(4096))
                .access(r)
        })
        .unwrap();
        log
    })
}

/// Sends `sig` to thread `target` once the device has the first request.
fn signal_when_waiting(
    got: mpsc::Receiver<Request>,
    target: libc::pthread_t,
    sig: i32,
) -> std::thread::JoinHandle<Request> {
    std::thread::spawn(move || {
        let first = got.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: `target` is the test's vCPU thread, alive until joined.
        assert_eq!(unsafe { libc::pthread_kill(target, sig) }, 0);
        first
    })
}

#[test]
fn a_signal_ends_the_wait_with_eintr_and_the_next_run_sends_again() {
    let Some(env) = support::env("a_signal_ends_the_wait_with_eintr_and_the_next_run_sends_again")
    else {
        return;
    };
    install(libc::SIGUSR1, on_signal);
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let (got_tx, got) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let device = stalling_device(dev, got_tx, go_rx);
    for r in regs_regions(vmm.as_raw_fd()) {
        gvm.vm.ioregion_add(&r).unwrap();
    }
    let mut vcpu = gvm.boot_vcpu().unwrap();
    // SAFETY: pthread_self has no preconditions.
    let killer = signal_when_waiting(got, unsafe { libc::pthread_self() }, libc::SIGUSR1);
    let started = Instant::now();
    assert_eq!(vcpu.run().err(), Some(Errno(libc::EINTR)));
    assert!(started.elapsed() < Duration::from_secs(5));
    let first = killer.join().unwrap();
    assert_eq!(vcpu.run_page().exit_reason, kvm_bindings::KVM_EXIT_MMIO);

    // immediate_exit set: the run fails at once and sends nothing.
    vcpu.run_page().immediate_exit = 1;
    assert_eq!(vcpu.run().err(), Some(Errno(libc::EINTR)));
    vcpu.run_page().immediate_exit = 0;

    // The device answers the abandoned request late, then the new one.
    go.send(()).unwrap();
    let o = run_until_done(&mut vcpu, 100).unwrap();
    assert_eq!(o.reports, IOREGION_REGS_REPORTS);
    drop(vcpu);
    drop(gvm);
    drop(vmm);
    let log = device.join().unwrap();
    // At least once: the interrupted write reached the device twice, with
    // two ids; nothing was sent while immediate_exit was set.
    assert_eq!(log[0], first);
    assert!(log[1].write && log[1].offset == 0 && log[1].data == 0x11);
    assert!(log[1].id > log[0].id);
    assert_eq!(log.len(), 2 + 9, "{log:?}");
}

#[test]
fn a_handler_setting_immediate_exit_ends_the_wait() {
    let Some(env) = support::env("a_handler_setting_immediate_exit_ends_the_wait") else {
        return;
    };
    install(libc::SIGUSR2, set_immediate_exit);
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let (got_tx, got) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let device = stalling_device(dev, got_tx, go_rx);
    for r in regs_regions(vmm.as_raw_fd()) {
        gvm.vm.ioregion_add(&r).unwrap();
    }
    let mut vcpu = gvm.boot_vcpu().unwrap();
    RUN_PAGE.store(vcpu.run_page(), SeqCst);
    // SAFETY: pthread_self has no preconditions.
    let killer = signal_when_waiting(got, unsafe { libc::pthread_self() }, libc::SIGUSR2);
    assert_eq!(vcpu.run().err(), Some(Errno(libc::EINTR)));
    killer.join().unwrap();
    assert_eq!(vcpu.run_page().immediate_exit, 1);
    vcpu.run_page().immediate_exit = 0;
    RUN_PAGE.store(std::ptr::null_mut(), SeqCst);
    go.send(()).unwrap();
    assert_eq!(
        run_until_done(&mut vcpu, 100).unwrap().reports,
        IOREGION_REGS_REPORTS
    );
    drop(vcpu);
    drop(gvm);
    drop(vmm);
    device.join().unwrap();
}

#[test]
fn the_kvm_signal_mask_applies_to_the_wait() {
    let Some(env) = support::env("the_kvm_signal_mask_applies_to_the_wait") else {
        return;
    };
    install(libc::SIGUSR1, on_signal);
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let (got_tx, got) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let device = stalling_device(dev, got_tx, go_rx);
    for r in regs_regions(vmm.as_raw_fd()) {
        gvm.vm.ioregion_add(&r).unwrap();
    }
    // As QEMU does: the kick signal is blocked in the thread and unblocked
    // only while the vCPU runs (KVM_SET_SIGNAL_MASK).
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: plain sigset manipulation on locals.
            let (blocked, run_mask) = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                assert_eq!(
                    libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()),
                    0
                );
                let mut current: libc::sigset_t = std::mem::zeroed();
                libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut current);
                let mut run = current;
                libc::sigdelset(&mut run, libc::SIGUSR1);
                (current, run)
            };
            let _ = blocked;
            let mut vcpu = gvm.boot_vcpu().unwrap();
            let mut arg = [0u8; 12];
            arg[..4].copy_from_slice(&8u32.to_ne_bytes());
            // SAFETY: the first 8 bytes of a sigset_t are the kernel's mask.
            let mask: [u8; 8] = unsafe { std::mem::transmute_copy(&run_mask) };
            arg[4..].copy_from_slice(&mask);
            // SAFETY: KVM_SET_SIGNAL_MASK reads a kvm_signal_mask with 8
            // bytes of mask from `arg`.
            unsafe { vcpu.control(kvmng_abi::ioctls::KVM_SET_SIGNAL_MASK, arg.as_ptr() as u64) }
                .unwrap();
            // SAFETY: pthread_self has no preconditions.
            let killer = signal_when_waiting(got, unsafe { libc::pthread_self() }, libc::SIGUSR1);
            let started = Instant::now();
            let r = vcpu.run().err();
            let took = started.elapsed();
            killer.join().unwrap();
            // As KVM_RUN leaves it (api.md 5.10): the signal the thread
            // blocks stays pending; QEMU takes it with sigtimedwait.
            // SAFETY: sigset operations on locals; a zero timeout.
            let taken = unsafe {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGUSR1);
                let zero = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 0,
                };
                libc::sigtimedwait(&set, std::ptr::null_mut(), &zero)
            };
            go.send(()).unwrap();
            let o = run_until_done(&mut vcpu, 100).unwrap();
            (r, took, o, taken)
        })
        .join()
        .unwrap()
    });
    let (r, took, o, taken) = result;
    assert_eq!(
        r,
        Some(Errno(libc::EINTR)),
        "the blocked signal ended the wait"
    );
    assert_eq!(taken, libc::SIGUSR1, "and stayed pending");
    assert!(took < Duration::from_secs(5));
    assert_eq!(o.reports, IOREGION_REGS_REPORTS);
    drop(gvm);
    drop(vmm);
    device.join().unwrap();
}

#[test]
fn a_pending_access_follows_the_vcpu_to_another_thread() {
    let Some(env) = support::env("a_pending_access_follows_the_vcpu_to_another_thread") else {
        return;
    };
    install(libc::SIGUSR1, on_signal);
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let (got_tx, got) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let device = stalling_device(dev, got_tx, go_rx);
    for r in regs_regions(vmm.as_raw_fd()) {
        gvm.vm.ioregion_add(&r).unwrap();
    }
    let mut vcpu = gvm.boot_vcpu().unwrap();
    // SAFETY: pthread_self has no preconditions.
    let killer = signal_when_waiting(got, unsafe { libc::pthread_self() }, libc::SIGUSR1);
    assert_eq!(vcpu.run().err(), Some(Errno(libc::EINTR)));
    killer.join().unwrap();
    let unbound = vcpu.unbind().unwrap();
    go.send(()).unwrap();
    let o = std::thread::scope(|s| {
        s.spawn(move || {
            let mut vcpu = unbound.bind().map_err(|(_, e)| e).unwrap();
            run_until_done(&mut vcpu, 100).unwrap()
        })
        .join()
        .unwrap()
    });
    assert_eq!(o.reports, IOREGION_REGS_REPORTS);
    drop(gvm);
    drop(vmm);
    let log = device.join().unwrap();
    let first_write = log
        .iter()
        .filter(|r| r.write && r.offset == 0 && !r.pio)
        .count();
    assert_eq!(
        first_write, 2,
        "the interrupted write was sent again: {log:?}"
    );
}

#[test]
fn deleting_a_region_does_not_cut_a_wait_short() {
    let Some(env) = support::env("deleting_a_region_does_not_cut_a_wait_short") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let (got_tx, got) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let device = std::thread::spawn(move || {
        let r = ioregion::recv_request(dev.as_fd()).unwrap().unwrap();
        got_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        ioregion::send_reply(dev.as_fd(), r.id, 0).unwrap();
        // Nothing more comes: the region is gone.
        ioregion::recv_request(dev.as_fd()).unwrap()
    });
    let [mmio, _] = regs_regions(vmm.as_raw_fd());
    gvm.vm.ioregion_add(&mmio).unwrap();
    let exit = std::thread::scope(|s| {
        let vcpu_thread = s.spawn(|| {
            let mut vcpu = gvm.boot_vcpu().unwrap();
            match vcpu.run().unwrap() {
                VcpuExit::MmioWrite { addr, data } => (addr, data.to_vec()),
                other => panic!("{other:?}"),
            }
        });
        got.recv().unwrap();
        let started = Instant::now();
        gvm.vm.ioregion_del(&mmio).unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "DEL does not wait"
        );
        go.send(()).unwrap();
        vcpu_thread.join().unwrap()
    });
    // The waiting access completed; the next one found no region.
    assert_eq!(exit, (MMIO_LONG + 8, 0x2222u16.to_le_bytes().to_vec()));
    drop(gvm);
    drop(vmm);
    assert_eq!(device.join().unwrap(), None);
}

#[test]
fn accesses_outside_every_region_are_ordinary_exits() {
    let Some(env) = support::env("accesses_outside_every_region_are_ordinary_exits") else {
        return;
    };
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_regs")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let device = Device::register_files(dev);
    // One byte: the 1-byte write fits, the 2-byte write at +8 does not; a
    // region over +9..+10 does not contain the 2-byte access at +8 either.
    gvm.vm
        .ioregion_add(&IoRegion::mmio(MMIO_LONG, 1, vmm.as_raw_fd()))
        .unwrap();
    gvm.vm
        .ioregion_add(&IoRegion::mmio(MMIO_LONG + 9, 1, vmm.as_raw_fd()))
        .unwrap();
    let mut vcpu = gvm.boot_vcpu().unwrap();
    match vcpu.run().unwrap() {
        VcpuExit::MmioWrite { addr, data } => {
            assert_eq!((addr, data.len()), (MMIO_LONG + 8, 2));
        }
        other => panic!("{other:?}"),
    }
    // Through kvmng_control(KVMNG_SCOPE_VCPU, KVM_RUN) too.
    // SAFETY: KVM_RUN takes no argument.
    unsafe { vcpu.control(kvmng_abi::ioctls::KVM_RUN, 0) }.unwrap();
    assert_eq!(vcpu.run_page().exit_reason, kvm_bindings::KVM_EXIT_MMIO);
    drop(vcpu);
    drop(gvm);
    drop(vmm);
    let log = device.join();
    assert_eq!(log.len(), 1);
    assert!(log[0].write && log[0].data == 0x11);
}

/// `kvmng_ioregion` with raw arguments.
fn raw(
    env: &support::Env,
    op: u32,
    region: *const kvmng_ioregion,
    flags: u32,
) -> Result<i64, Errno> {
    // SAFETY: `region` is a live struct or deliberately bad (EFAULT).
    unsafe { env.kvm.backend().ioregion(op, region, flags) }
}

fn errno_of(r: Result<i64, Errno>) -> i32 {
    support::errno(r)
}

#[test]
fn registration_checks_every_argument_in_order() {
    let Some(env) = support::env("registration_checks_every_argument_in_order") else {
        return;
    };
    const ADD: u32 = KVMNG_IOREGION_ADD;
    const DEL: u32 = KVMNG_IOREGION_DEL;
    let (vmm, _dev) = ioregion::socket_pair().unwrap();
    let good = IoRegion::mmio(MMIO_LONG, 16, vmm.as_raw_fd()).to_abi();
    let bad_ptr = std::ptr::dangling::<kvmng_ioregion>(); // address 8: unmapped

    // Before a VM is bound: flags, then op, then EUNATCH.
    assert_eq!(errno_of(raw(&env, ADD, bad_ptr, 1)), libc::EINVAL);
    assert_eq!(errno_of(raw(&env, ADD, bad_ptr, 1 << 31)), libc::EINVAL);
    assert_eq!(errno_of(raw(&env, 0, bad_ptr, 0)), libc::EINVAL);
    assert_eq!(errno_of(raw(&env, 3, bad_ptr, 0)), libc::EINVAL);
    assert_eq!(errno_of(raw(&env, ADD, bad_ptr, 0)), libc::EUNATCH);
    assert_eq!(errno_of(raw(&env, DEL, &good, 0)), libc::EUNATCH);

    let vm = env.kvm.create_vm().unwrap();
    assert_eq!(errno_of(raw(&env, ADD, bad_ptr, 0)), libc::EFAULT);
    let with = |f: &dyn Fn(&mut kvmng_ioregion)| {
        let mut r = good;
        f(&mut r);
        r
    };
    let check = |op: u32, r: kvmng_ioregion, want: i32, what: &str| {
        assert_eq!(
            raw(&env, op, &r, 0).err().map(|e| e.0),
            Some(want),
            "{what}: {r:?}"
        );
    };
    check(
        ADD,
        with(&|r| r.flags = 1 << 2),
        libc::EINVAL,
        "unknown flag",
    );
    check(ADD, with(&|r| r.reserved[3] = 1), libc::EINVAL, "reserved");
    check(
        DEL,
        with(&|r| r.reserved[0] = 1),
        libc::EINVAL,
        "reserved (DEL)",
    );
    check(ADD, with(&|r| r.size = 0), libc::EINVAL, "size 0");
    let too_big = KVMNG_IOREGION_MAX_SIZE + 1;
    check(ADD, with(&|r| r.size = too_big), libc::E2BIG, "too big");
    check(
        ADD,
        with(&|r| {
            r.size = too_big;
            r.fd = -1
        }),
        libc::E2BIG,
        "E2BIG before EBADF",
    );
    check(ADD, with(&|r| r.addr = u64::MAX - 7), libc::EINVAL, "wraps");
    let port = |r: &mut kvmng_ioregion, addr: u64| {
        r.flags = KVMNG_IOREGION_PIO;
        r.addr = addr;
    };
    check(
        ADD,
        with(&|r| port(r, 0xFFF1)),
        libc::EINVAL,
        "beyond port 0xFFFF",
    );
    check(ADD, with(&|r| r.fd = -1), libc::EBADF, "fd -1");
    check(ADD, with(&|r| r.fd = 999), libc::EBADF, "closed fd");
    let file = std::fs::File::open("/proc/self/status").unwrap();
    check(
        ADD,
        with(&|r| r.fd = file.as_raw_fd()),
        libc::ENOTSOCK,
        "a file",
    );
    let inet = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    check(
        ADD,
        with(&|r| r.fd = inet.as_raw_fd()),
        libc::EAFNOSUPPORT,
        "AF_INET",
    );
    let (stream, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    check(
        ADD,
        with(&|r| r.fd = stream.as_raw_fd()),
        libc::EPROTOTYPE,
        "SOCK_STREAM",
    );
    let (dgram, _peer2) = std::os::unix::net::UnixDatagram::pair().unwrap();
    check(
        ADD,
        with(&|r| r.fd = dgram.as_raw_fd()),
        libc::EPROTOTYPE,
        "SOCK_DGRAM",
    );
    // SAFETY: a new socket, owned below.
    let lone = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0) };
    assert!(lone >= 0);
    // SAFETY: `lone` was just created and nothing else owns it.
    let lone = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(lone) };
    check(
        ADD,
        with(&|r| r.fd = lone.as_raw_fd()),
        libc::ENOTCONN,
        "unconnected",
    );

    // Overlap within a space is EEXIST; the other space is separate.
    assert_eq!(raw(&env, ADD, &good, 0), Ok(0));
    check(ADD, good, libc::EEXIST, "same range");
    check(
        ADD,
        with(&|r| r.addr = MMIO_LONG + 15),
        libc::EEXIST,
        "last byte",
    );
    check(
        ADD,
        with(&|r| r.addr = MMIO_LONG - 15),
        libc::EEXIST,
        "first byte",
    );
    assert_eq!(
        raw(&env, ADD, &with(&|r| r.addr = MMIO_LONG + 16), 0),
        Ok(0)
    );
    assert_eq!(
        raw(&env, ADD, &with(&|r| r.flags = KVMNG_IOREGION_PIO), 0),
        Err(Errno(libc::EINVAL))
    );
    let pio = with(&|r| {
        r.flags = KVMNG_IOREGION_PIO | KVMNG_IOREGION_POSTED;
        r.addr = 0x10;
    });
    assert_eq!(
        raw(&env, ADD, &pio, 0),
        Ok(0),
        "ports 0x10.. do not collide with MMIO"
    );
    let last_ports = with(&|r| port(r, 0xFFF0));
    assert_eq!(raw(&env, ADD, &last_ports, 0), Ok(0), "up to port 0xFFFF");

    // DEL needs the exact range in the same space; the fd is not looked at.
    check(DEL, with(&|r| r.size = 8), libc::ENOENT, "shorter");
    check(
        DEL,
        with(&|r| r.addr = MMIO_LONG + 1),
        libc::ENOENT,
        "moved",
    );
    check(
        DEL,
        with(&|r| r.flags = KVMNG_IOREGION_PIO),
        libc::EINVAL,
        "PIO beyond 0xFFFF",
    );
    check(
        DEL,
        with(&|r| r.addr = 0x10),
        libc::ENOENT,
        "the MMIO range 0x10..",
    );
    let pio_without_posted = with(&|r| port(r, 0x10));
    assert_eq!(
        raw(&env, DEL, &pio_without_posted, 0),
        Ok(0),
        "the PIO flag is part of the identity, POSTED is not"
    );
    assert_eq!(raw(&env, DEL, &with(&|r| r.fd = -1), 0), Ok(0));
    check(DEL, good, libc::ENOENT, "already deleted");
    assert_eq!(raw(&env, ADD, &good, 0), Ok(0), "the range is free again");

    // The table holds KVMNG_IOREGION_MAX regions in all.
    let mut added = 3;
    let mut addr = MMIO_LONG + 0x10_0000;
    while added < KVMNG_IOREGION_MAX {
        assert_eq!(raw(&env, ADD, &with(&|r| r.addr = addr), 0), Ok(0));
        addr += 16;
        added += 1;
    }
    check(ADD, with(&|r| r.addr = addr), libc::ENOSPC, "full");
    drop(vm);
    // Unbinding the VM dropped its regions.
    let _vm = env.kvm.create_vm().unwrap();
    assert_eq!(raw(&env, ADD, &good, 0), Ok(0));
}

#[test]
fn signals_while_several_vcpus_share_a_socket() {
    let Some(env) = support::env("signals_while_several_vcpus_share_a_socket") else {
        return;
    };
    install(libc::SIGUSR1, on_signal);
    const VCPUS: u64 = 3;
    const ITERATIONS: u64 = 2000;
    let gvm = GuestVm::new(&env.kvm, guest("ioregion_smp")).unwrap();
    let (vmm, dev) = ioregion::socket_pair().unwrap();
    let device = Device::register_files(dev);
    gvm.vm
        .ioregion_add(&IoRegion::mmio(MMIO_LONG, 8 * VCPUS, vmm.as_raw_fd()))
        .unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (results, signals) = std::thread::scope(|s| {
        let (tids_tx, tids) = mpsc::channel::<libc::pthread_t>();
        let vcpus: Vec<_> = (0..VCPUS)
            .map(|i| {
                let gvm = &gvm;
                let tids_tx = tids_tx.clone();
                s.spawn(move || {
                    // SAFETY: pthread_self has no preconditions.
                    tids_tx.send(unsafe { libc::pthread_self() }).unwrap();
                    let mut vcpu = gvm.boot_vcpu_id(i).unwrap();
                    let mut regs = vcpu.regs().unwrap();
                    regs.rbx = i;
                    regs.rcx = ITERATIONS;
                    vcpu.set_regs(&regs).unwrap();
                    let mut interrupted = 0u32;
                    loop {
                        match run_until_done(&mut vcpu, 10) {
                            Ok(o) => return (o, interrupted),
                            Err(Errno(libc::EINTR)) => interrupted += 1,
                            Err(e) => panic!("vCPU {i}: {e}"),
                        }
                    }
                })
            })
            .collect();
        let targets: Vec<libc::pthread_t> = (0..VCPUS).map(|_| tids.recv().unwrap()).collect();
        let stop = &stop;
        let killer = s.spawn(move || {
            let mut sent = 0u64;
            while !stop.load(SeqCst) {
                for t in &targets {
                    // SAFETY: the vCPU threads live until `stop` is set.
                    unsafe { libc::pthread_kill(*t, libc::SIGUSR1) };
                    sent += 1;
                }
                std::thread::sleep(Duration::from_micros(300));
            }
            sent
        });
        let results: Vec<_> = vcpus.into_iter().map(|t| t.join().unwrap()).collect();
        stop.store(true, SeqCst);
        (results, killer.join().unwrap())
    });
    let interrupted: u32 = results.iter().map(|(_, n)| n).sum();
    eprintln!("{signals} signals, {interrupted} runs ended with EINTR");
    for (i, (o, _)) in results.iter().enumerate() {
        assert_eq!(
            (o.done, o.fail),
            (Some(ITERATIONS as u32), None),
            "vCPU {i}"
        );
    }
    drop(gvm);
    drop(vmm);
    device.join();
}
