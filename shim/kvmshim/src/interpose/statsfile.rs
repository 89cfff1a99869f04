//! The census line: at process exit (library destructor, `_exit`), and
//! before an exec replaces the image, one JSON object is appended to the
//! `KVMNG_STATS` file for a process that issued KVM ioctls:
//!
//! ```json
//! {"pid":812,"exe":"/usr/bin/qemu-system-x86_64","mode":"auto","backend":"legacy",
//!  "commands":[{"name":"KVM_RUN","count":9,"translated":9,"fallback":0,"passthrough":0,
//!  "errors":0,"time_ns":51234,"fallback_reasons":{}}],
//!  "threads":[{"tid":815,"vcpu":0,"run":{"translated":9,"fallback":0,"passthrough":0},
//!  "setup":{"translated":0,"fallback":37,"passthrough":0},
//!  "other":{"translated":40,"fallback":0,"passthrough":0}}],"threads_uncounted":0}
//! ```
//!
//! `threads` has a row per thread that issued vCPU ioctls (`vcpu`: the
//! vCPU of its last KVM_RUN, or null; `setup`: its other vCPU ioctls
//! before its first KVM_RUN, `other`: after it).
//!
//! (one line in the file). Composed in static storage and written with one
//! write(2), so lines of concurrent processes never interleave.

use super::census::{self, Taken};
use super::cmdindex::{self, SLOTS};
use super::config;
use super::fmtbuf::Buf;
use super::pathtmpl;
use super::reason::Reason;
use super::thread_census;
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering::SeqCst};

const LINE_MAX: usize = 256 * 1024;

struct Storage(UnsafeCell<[u8; LINE_MAX]>);
// SAFETY: only used while FLUSHING is held.
unsafe impl Sync for Storage {}

static LINE: Storage = Storage(UnsafeCell::new([0; LINE_MAX]));
static FLUSHING: AtomicBool = AtomicBool::new(false);

/// Appends the census line of the calls counted since the last one, if a
/// census file is set and there were calls. Never in a vfork child.
pub fn flush() {
    if !config::enabled() || !config::STATS_PATH.is_set() || !census::any() {
        return;
    }
    if !super::binding::own_process() {
        return;
    }
    if FLUSHING.swap(true, SeqCst) {
        return;
    }
    // SAFETY: FLUSHING is held: this is the only reference to LINE.
    let storage = unsafe { &mut *LINE.0.get() };
    let pid = kvmng::sys::getpid();
    let mut b = Buf::new(storage);
    compose(&mut b, pid);
    if !b.overflow {
        write_line(pid, b.bytes());
    }
    FLUSHING.store(false, SeqCst);
}

fn compose(b: &mut Buf<'_>, pid: i32) {
    let mut exe = [0u8; pathtmpl::MAX];
    let exe_len = read_exe(&mut exe);
    b.s("{\"pid\":").u(pid as u64);
    b.s(",\"exe\":").json_str(&exe[..exe_len]);
    b.s(",\"mode\":\"").s(config::mode().name());
    b.s("\",\"backend\":\"")
        .s(config::backend_name())
        .s("\",\"commands\":[");
    let mut first = true;
    for slot in 0..SLOTS {
        let taken = census::take(slot);
        if taken.count() == 0 {
            continue;
        }
        if !first {
            b.s(",");
        }
        first = false;
        command(b, cmdindex::name(slot), &taken);
    }
    b.s("],\"threads\":[");
    let mut first = true;
    for i in 0..thread_census::MAX_THREADS {
        let Some(t) = thread_census::take(i) else {
            continue;
        };
        if !first {
            b.s(",");
        }
        first = false;
        thread(b, &t);
    }
    b.s("],\"threads_uncounted\":").u(thread_census::overflow());
    b.s("}\n");
}

fn by_path(b: &mut Buf<'_>, name: &str, p: &thread_census::ByPath) {
    b.s(",\"").s(name).s("\":{\"translated\":").u(p.translated);
    b.s(",\"fallback\":").u(p.fallback);
    b.s(",\"passthrough\":").u(p.passthrough).s("}");
}

fn thread(b: &mut Buf<'_>, t: &thread_census::Taken) {
    b.s("{\"tid\":").u(t.tid as u64).s(",\"vcpu\":");
    match t.vcpu {
        Some(id) => b.u(u64::from(id)),
        None => b.s("null"),
    };
    by_path(b, "run", &t.run);
    by_path(b, "setup", &t.setup);
    by_path(b, "other", &t.other);
    b.s("}");
}

fn command(b: &mut Buf<'_>, name: &str, t: &Taken) {
    b.s("{\"name\":\"").s(name).s("\"");
    b.s(",\"count\":").u(t.count());
    b.s(",\"translated\":").u(t.translated);
    b.s(",\"fallback\":").u(t.fallback);
    b.s(",\"passthrough\":").u(t.passthrough);
    b.s(",\"errors\":").u(t.errors);
    b.s(",\"time_ns\":").u(super::clock::to_ns(t.ticks()));
    b.s(",\"fallback_reasons\":{");
    let mut first = true;
    for reason in Reason::ALL {
        let n = t.reasons[reason as usize];
        if n == 0 {
            continue;
        }
        if !first {
            b.s(",");
        }
        first = false;
        b.json_str(reason.text().as_bytes()).s(":").u(n);
    }
    b.s("}}");
}

fn read_exe(out: &mut [u8; pathtmpl::MAX]) -> usize {
    kvmng::sys::readlink(c"/proc/self/exe", out).unwrap_or(0)
}

fn write_line(pid: i32, line: &[u8]) {
    let mut path = [0u8; pathtmpl::MAX];
    if !config::STATS_PATH.expand(pid, &mut path) {
        return;
    }
    let Ok(fd) = pathtmpl::open_append(&path) else {
        return;
    };
    let _ = crate::raw::write(fd, line);
    let _ = kvmng::sys::close(fd);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_object() {
        let mut data = [0u8; 512];
        let mut b = Buf::new(&mut data);
        let mut t = Taken {
            translated: 2,
            fallback: 1,
            errors: 1,
            ..Default::default()
        };
        t.reasons[Reason::SecondVm as usize] = 1;
        command(&mut b, "KVM_CREATE_VM", &t);
        assert_eq!(
            core::str::from_utf8(b.bytes()).unwrap(),
            "{\"name\":\"KVM_CREATE_VM\",\"count\":3,\"translated\":2,\"fallback\":1,\
             \"passthrough\":0,\"errors\":1,\"time_ns\":0,\
             \"fallback_reasons\":{\"second live VM\":1}}"
        );
    }
}
