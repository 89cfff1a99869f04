//! Running one program: own process group, output to a log file, a deadline,
//! optionally a marker line that ends the run (for programs that idle, like
//! QEMU after SeaBIOS gives up).

use crate::outcome::Termination;
use anyhow::{Context, Result};
use std::fs::File;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variables the runner controls: removed from native runs and
/// set explicitly for shim runs.
pub const SHIM_ENV: [&str; 4] = ["LD_PRELOAD", "KVMNG_MODE", "KVMNG_STATS", "KVMNG_TRACE"];

/// What to run and how.
#[derive(Clone, Debug)]
pub struct Spec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub cwd: PathBuf,
    /// Set in the child's environment (after removing [`SHIM_ENV`]).
    pub env: Vec<(String, String)>,
    /// stdout and stderr go here.
    pub log: PathBuf,
    pub timeout: Duration,
    /// When this file contains this text, the run is ended with SIGTERM
    /// (the program may then exit cleanly and write its statistics).
    pub stop_when: Option<(PathBuf, String)>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ended {
    pub termination: Termination,
    /// The run was ended because its `stop_when` marker appeared.
    pub stopped_on_marker: bool,
    pub elapsed: Duration,
}

const POLL: Duration = Duration::from_millis(20);
const GRACE: Duration = Duration::from_secs(3);

/// Runs `spec` to completion, the deadline, or its marker.
pub fn run(spec: &Spec) -> Result<Ended> {
    let log = File::create(&spec.log)
        .with_context(|| format!("cannot create log {}", spec.log.display()))?;
    let log2 = log
        .try_clone()
        .context("cannot duplicate the log file descriptor")?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .process_group(0);
    for k in SHIM_ENV {
        cmd.env_remove(k);
    }
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {}", spec.program.display()))?;
    let deadline = start + spec.timeout;
    let mut stopped_on_marker = false;
    let mut terminated_at: Option<Instant> = None;
    loop {
        if exited_unreaped(&child)? {
            // The leader is a zombie, so its process-group id is still ours:
            // end anything it left behind in the group, then reap it.
            kill_group(&child, libc::SIGKILL);
            let status = child.wait().context("wait for child")?;
            let termination = if terminated_at.is_some() && !stopped_on_marker {
                Termination::TimedOut
            } else {
                match (status.code(), status.signal()) {
                    (Some(c), _) => Termination::Exited(c),
                    (None, Some(s)) => Termination::Signaled(s),
                    (None, None) => Termination::Signaled(0),
                }
            };
            return Ok(Ended {
                termination,
                stopped_on_marker,
                elapsed: start.elapsed(),
            });
        }
        let now = Instant::now();
        match terminated_at {
            None => {
                if let Some((file, marker)) = &spec.stop_when {
                    if file_contains(file, marker) {
                        stopped_on_marker = true;
                        terminated_at = Some(now);
                        kill_group(&child, libc::SIGTERM);
                    }
                }
                if terminated_at.is_none() && now >= deadline {
                    terminated_at = Some(now);
                    kill_group(&child, libc::SIGTERM);
                }
            }
            Some(t) if now >= t + GRACE => kill_group(&child, libc::SIGKILL),
            Some(_) => {}
        }
        std::thread::sleep(POLL);
    }
}

fn file_contains(path: &Path, marker: &str) -> bool {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).contains(marker))
        .unwrap_or(false)
}

/// Whether the child has exited, without reaping it (waitid WNOWAIT).
fn exited_unreaped(child: &Child) -> Result<bool> {
    let pid = libc::id_t::from(child.id());
    // SAFETY: siginfo_t is plain data; all-zero is a valid value that waitid
    // overwrites (si_pid stays 0 when no child has changed state).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid on our own unreaped child with a valid siginfo_t
    // pointer; WNOWAIT leaves the child waitable for Child::wait.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("waitid on a test process");
    }
    // SAFETY: si_pid is valid for the SIGCHLD-style info waitid fills in
    // (and 0 when nothing changed, since the struct was zeroed).
    Ok(unsafe { info.si_pid() } != 0)
}

/// Sends `sig` to the child's process group (the child leads it).
fn kill_group(child: &Child, sig: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) with a negative pid signals that process group; the
    // group is the child's own (process_group(0)) and the child is not yet
    // reaped, so the id cannot have been reused.
    unsafe {
        libc::kill(-pgid, sig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(script: &str, timeout_ms: u64, dir: &Path) -> Spec {
        Spec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            cwd: dir.to_path_buf(),
            env: vec![("KVMNG_TEST_VAR".into(), "42".into())],
            log: dir.join("log"),
            timeout: Duration::from_millis(timeout_ms),
            stop_when: None,
        }
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("kvmng-compat-exec-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn exit_status_output_and_env() {
        let d = tmpdir("exit");
        let e = run(&spec(
            "echo out $KVMNG_TEST_VAR; echo err >&2; exit 4",
            10_000,
            &d,
        ))
        .unwrap();
        assert_eq!(e.termination, Termination::Exited(4));
        let log = std::fs::read_to_string(d.join("log")).unwrap();
        assert!(log.contains("out 42") && log.contains("err"), "{log}");
    }

    #[test]
    fn signal_is_a_crash_not_a_timeout() {
        let d = tmpdir("sig");
        let e = run(&spec("kill -SEGV $$", 10_000, &d)).unwrap();
        assert_eq!(e.termination, Termination::Signaled(libc::SIGSEGV));
    }

    #[test]
    fn deadline_kills_the_whole_group() {
        let d = tmpdir("timeout");
        let pidfile = d.join("grandchild");
        let script = format!(
            "sleep 30 & echo $! > {}; trap '' TERM; wait",
            pidfile.display()
        );
        let e = run(&spec(&script, 300, &d)).unwrap();
        assert_eq!(e.termination, Termination::TimedOut);
        assert!(e.elapsed < Duration::from_secs(10));
        let pid: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: signal 0 only probes whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        assert!(!alive, "the background sleep survived the timeout");
    }

    #[test]
    fn marker_stops_the_run() {
        let d = tmpdir("marker");
        let out = d.join("out.txt");
        let mut s = spec(
            &format!("echo 'No bootable device.' > {}; sleep 30", out.display()),
            20_000,
            &d,
        );
        s.stop_when = Some((out, "No bootable device.".into()));
        let e = run(&s).unwrap();
        assert!(e.stopped_on_marker);
        assert_eq!(e.termination, Termination::Signaled(libc::SIGTERM));
        assert!(e.elapsed < Duration::from_secs(10));
    }
}
