//! Instance child processes: spawn with the URL as the only argument and stdout/stderr
//! piped, hand the child to the process's one watcher thread ([`super::watch`]: lines and
//! exit reach the master's runtime through its queue), signal with SIGTERM/SIGKILL. Each
//! child gets SIGTERM from the kernel if the master dies, so it never outlives its master.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::watch::{self, ChildEvent, Watched};
use crate::wake::QueueTx;

/// A live child: its pidfd (shared with the watcher thread), its pid and whether it has
/// been reaped, so that a recycled pid is never signalled.
#[derive(Clone, Debug)]
pub struct ChildHandle {
    pid: i32,
    pidfd: Option<Arc<OwnedFd>>,
    reaped: Arc<AtomicBool>,
}

impl ChildHandle {
    /// Ask the child to stop (SIGTERM).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Force the child down (SIGKILL).
    pub fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// True once the child has exited and been reaped.
    pub fn is_reaped(&self) -> bool {
        self.reaped.load(Ordering::SeqCst)
    }

    fn signal(&self, sig: i32) {
        if self.is_reaped() || self.pid <= 0 {
            return;
        }
        // A pidfd names this very process, even if the watcher reaps it meanwhile (the
        // signal then fails with ESRCH, which is fine).
        if let Some(fd) = &self.pidfd {
            let _ = crate::sys::pidfd_send_signal(fd.as_fd(), sig);
            return;
        }
        // Without pidfd (Linux < 5.3): our own child, not reaped a moment ago.
        crate::sys::kill(self.pid, sig);
    }
}

/// Spawn `exe url` (on the calling thread: the master's runtime thread, which lives as
/// long as the children) and hand it to the watcher thread, which reports into `events`.
pub fn spawn(
    exe: &Path,
    url: &str,
    id: &str,
    generation: u64,
    events: QueueTx<ChildEvent>,
) -> std::io::Result<ChildHandle> {
    let mut cmd = Command::new(exe);
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A master killed with SIGKILL must not leave its instances running unmanaged (they
    // would hold their ports against the next master).
    crate::sys::prepare_child(&mut cmd);
    let child = cmd.spawn()?;
    let pid = child.id() as i32;
    let handle = ChildHandle {
        pid,
        pidfd: crate::sys::pidfd_open(pid).ok().map(Arc::new),
        reaped: Arc::new(AtomicBool::new(false)),
    };
    let watched = Watched {
        id: id.to_string(),
        generation,
        events,
        child,
        pidfd: handle.pidfd.clone(),
        reaped: handle.reaped.clone(),
    };
    if let Err((e, mut back)) = watch::watch(watched) {
        // Without a watcher nobody would reap it: end it here (SIGKILL is not ignorable,
        // so the wait is short).
        let _ = back.child.kill();
        let _ = back.child.wait();
        back.reaped.store(true, Ordering::SeqCst);
        return Err(e);
    }
    Ok(handle)
}
