//! A device thread: the other end of an I/O region's socket. It logs every
//! request it receives (normalized: the id becomes its order, with a flag
//! when the id broke the rules of 5.10), and answers, stalls, dies or
//! replies with a malformed message as the operations say.

use super::ops::DevMode;
use kvmng_abi::*;
use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};

/// The thread running a vCPU right now, and its kvm_run page: a stalling
/// device sets immediate_exit there and signals the thread (5.10: the
/// signal ends the wait, immediate_exit keeps the re-entry from running).
static RUNNING_TID: AtomicI32 = AtomicI32::new(0);
static RUNNING_RUN: AtomicU64 = AtomicU64::new(0);

/// How long a run may take before the watchdog kicks it, as a VMM kicks
/// a vCPU: a guest halted in a VM with an in-kernel irqchip waits for an
/// interrupt that the fuzzer never sends, on both sides alike.
const KICK_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// When the current run started (ns on `CLOCK_MONOTONIC`; 0: none), and
/// whether the watchdog kicked it.
static RUN_STARTED: AtomicU64 = AtomicU64::new(0);
static KICKED: AtomicU32 = AtomicU32::new(0);
/// The process whose watchdog thread runs (fork children start their own).
static WATCHDOG_PID: AtomicI32 = AtomicI32::new(0);

fn now_ns() -> u64 {
    // SAFETY: writes one timespec on our stack.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Sets `immediate_exit` in the running vCPU's `kvm_run` and signals its
/// thread: what a stalling device and the watchdog do.
fn kick_running() {
    let run = RUNNING_RUN.load(SeqCst);
    if run != 0 {
        // SAFETY: immediate_exit is the u8 at offset 1 of the running
        // vCPU's mapped kvm_run.
        unsafe { (run as *mut u8).add(1).write_volatile(1) };
    }
    let tid = RUNNING_TID.load(SeqCst);
    if tid != 0 {
        let _ = kvmng::sys::tgkill(tid, libc::SIGUSR1);
    }
}

/// Marks the start of a run on this thread (`run`: its kvm_run), starting
/// this process's watchdog thread on first use.
pub fn run_begin(run: u64) {
    // SAFETY: getpid() has no arguments.
    let pid = unsafe { libc::getpid() };
    if WATCHDOG_PID.swap(pid, SeqCst) != pid {
        std::thread::spawn(|| loop {
            std::thread::sleep(std::time::Duration::from_millis(100));
            let t = RUN_STARTED.load(SeqCst);
            if t != 0
                && now_ns().saturating_sub(t) > KICK_AFTER.as_nanos() as u64
                && KICKED.swap(1, SeqCst) == 0
            {
                kick_running();
            }
        });
    }
    KICKED.store(0, SeqCst);
    RUNNING_TID.store(kvmng::sys::gettid(), SeqCst);
    RUNNING_RUN.store(run, SeqCst);
    RUN_STARTED.store(now_ns(), SeqCst);
}

/// Ends the run that `run_begin` started.
pub fn run_end() {
    RUN_STARTED.store(0, SeqCst);
    RUNNING_TID.store(0, SeqCst);
    RUNNING_RUN.store(0, SeqCst);
}

/// Whether the watchdog kicked the last run (once).
pub fn take_kicked() -> bool {
    KICKED.swap(0, SeqCst) != 0
}

fn mode_code(m: DevMode) -> u32 {
    match m {
        DevMode::Answer => 0,
        DevMode::Stall => 1,
        DevMode::Die => 2,
        DevMode::Malformed(k) => 16 + u32::from(k),
    }
}

struct Shared {
    mode: AtomicU32,
    barrier: AtomicU64,
    log: Mutex<Vec<u8>>,
    dead: AtomicU32,
}

pub struct Device {
    /// The vCPU's end: the fd a region names.
    pub fd: i32,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn send(fd: i32, b: &[u8]) {
    // SAFETY: sends `b` from this frame.
    unsafe {
        libc::send(fd, b.as_ptr().cast(), b.len(), libc::MSG_NOSIGNAL);
    }
}

fn reply(fd: i32, id: u64, data: u64) {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&id.to_le_bytes());
    b[8..].copy_from_slice(&data.to_le_bytes());
    send(fd, &b);
}

fn serve(fd: i32, s: &Shared) {
    let mut ord: u64 = 0;
    let mut last_id: u64 = 0;
    let mut buf = [0u8; 128];
    loop {
        // SAFETY: receives into `buf`.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        if n <= 0 {
            break;
        }
        let n = n as usize;
        if n == 1 && buf[0] == b'B' {
            s.barrier.fetch_add(1, SeqCst);
            continue;
        }
        if n == 2 && &buf[..2] == b"Q!" {
            break;
        }
        ord += 1;
        let u64_at = |p: usize| u64::from_le_bytes(buf[p..p + 8].try_into().expect("8"));
        let id = if n >= 8 { u64_at(0) } else { 0 };
        let mut anomaly = 0u8;
        if n != 40 {
            anomaly |= 1;
        }
        if id == 0 {
            anomaly |= 2;
        }
        if id <= last_id {
            anomaly |= 4;
        }
        last_id = last_id.max(id);
        let mut entry = Vec::with_capacity(48);
        entry.extend_from_slice(&ord.to_le_bytes());
        entry.push(anomaly);
        // Everything after the id, as sent.
        entry.extend_from_slice(&buf[8.min(n)..n]);
        s.log.lock().expect("log").extend_from_slice(&entry);
        if n < 40 {
            continue;
        }
        let (len, dir, flags) = (buf[36], u32::from(buf[37]), u32::from(buf[38]));
        let offset = u64_at(8);
        let user_data = u64_at(24);
        let posted = dir == KVMNG_IOREGION_WRITE && flags & KVMNG_IOREGION_REQ_POSTED != 0;
        let value = (ord.wrapping_mul(0x9e37_79b9) ^ offset ^ user_data.rotate_left(7)) & mask(len);
        let data = if dir == KVMNG_IOREGION_READ { value } else { 0 };
        let mode = s.mode.load(SeqCst);
        // A posted write is never the one a device dies at: whether the
        // guest's next access finds the socket closed would then depend on
        // when this thread gets to close it.
        if posted {
            continue;
        }
        match mode {
            0 => reply(fd, id, data),
            1 => {
                s.mode.store(0, SeqCst);
                kick_running();
            }
            2 => break,
            k => {
                s.mode.store(0, SeqCst);
                match k - 16 {
                    // 8 bytes: not a reply.
                    0 => send(fd, &id.to_le_bytes()),
                    1 => reply(fd, 0, data),
                    // Above the last id sent.
                    2 => reply(fd, id + (1 << 40), data),
                    // A write's reply with data, or a read's of 24 bytes.
                    3 if dir == KVMNG_IOREGION_WRITE => reply(fd, id, 0x55),
                    3 => {
                        let mut b = [0u8; 24];
                        b[..8].copy_from_slice(&id.to_le_bytes());
                        b[8..16].copy_from_slice(&data.to_le_bytes());
                        send(fd, &b);
                    }
                    // A stale id (the one before), then the reply.
                    4 => {
                        reply(fd, id - 1, data ^ 1);
                        reply(fd, id, data);
                    }
                    // The reply twice (the second is stale).
                    _ => {
                        reply(fd, id, data);
                        reply(fd, id, data ^ 2);
                    }
                }
            }
        }
    }
    s.dead.store(1, SeqCst);
    // SAFETY: the device's own end, closed once, here.
    unsafe { libc::close(fd) };
}

fn mask(len: u8) -> u64 {
    if len >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * u32::from(len))) - 1
    }
}

impl Device {
    /// A connected SOCK_SEQPACKET pair and the thread on one end.
    pub fn new() -> Device {
        let mut sv = [0i32; 2];
        // SAFETY: writes two fds into `sv`.
        let r = unsafe {
            libc::socketpair(
                libc::AF_UNIX,
                libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
                0,
                sv.as_mut_ptr(),
            )
        };
        assert_eq!(r, 0, "socketpair");
        let shared = Arc::new(Shared {
            mode: AtomicU32::new(0),
            barrier: AtomicU64::new(0),
            log: Mutex::new(Vec::new()),
            dead: AtomicU32::new(0),
        });
        let s2 = shared.clone();
        let dev = sv[1];
        let thread = std::thread::spawn(move || serve(dev, &s2));
        Device {
            fd: sv[0],
            shared,
            thread: Some(thread),
        }
    }

    pub fn set_mode(&self, m: DevMode) {
        self.shared.mode.store(mode_code(m), SeqCst);
    }

    /// Waits until the device has read everything sent to it so far (a
    /// barrier message behind the requests); then its log, emptied.
    pub fn drain(&self) -> Vec<u8> {
        if self.shared.dead.load(SeqCst) == 0 {
            let before = self.shared.barrier.load(SeqCst);
            let b = [b'B'];
            // SAFETY: sends one byte from this frame.
            let n = unsafe {
                libc::send(
                    self.fd,
                    b.as_ptr().cast(),
                    1,
                    libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
                )
            };
            if n == 1 {
                let t0 = std::time::Instant::now();
                while self.shared.barrier.load(SeqCst) == before
                    && self.shared.dead.load(SeqCst) == 0
                {
                    if t0.elapsed() > std::time::Duration::from_secs(20) {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        }
        std::mem::take(&mut *self.shared.log.lock().expect("log"))
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if self.shared.dead.load(SeqCst) == 0 {
            send(self.fd, b"Q!");
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // SAFETY: our end, closed once.
        unsafe { libc::close(self.fd) };
    }
}
