//! Instance child processes: spawn with the URL as the only argument, read stdout and
//! stderr on helper threads, signal with SIGTERM/SIGKILL. Each child gets SIGTERM from
//! the kernel if the master dies, so it never outlives its master.
//!
//! The reader thread copies every non-CHECK_POINT line to the master's stdout as
//! `<line> [<id>]` (as Go does) and hands every line to the runtime through the cross-thread queue; on
//! end of output it reaps the child and reports the exit. The runtime never blocks.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::stats::CheckPoint;
use crate::wake::QueueTx;

/// What a child reports to the supervisor.
#[derive(Debug)]
pub enum ChildEvent {
    /// One output line (without the line ending).
    Line {
        /// Instance id.
        id: String,
        /// Spawn generation.
        generation: u64,
        /// The raw line, ANSI codes included.
        line: String,
    },
    /// The child exited; `success` is false for a non-zero code or a signal.
    Exited {
        /// Instance id.
        id: String,
        /// Spawn generation.
        generation: u64,
        /// Exit code 0.
        success: bool,
    },
}

/// A live child: its pid and whether it has been reaped (so a recycled pid is never signalled).
#[derive(Clone, Debug)]
pub struct ChildHandle {
    pid: i32,
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
        // The pid belongs to our own child, not reaped yet (checked here), so it cannot
        // have been recycled for another process.
        if self.is_reaped() || self.pid <= 0 {
            return;
        }
        crate::sys::kill(self.pid, sig);
    }
}

/// Forward every line of `out` as `ChildEvent::Line`, echoing non-CHECK_POINT lines.
fn pump(out: impl std::io::Read, id: &str, generation: u64, events: &QueueTx<ChildEvent>) {
    let mut lines = BufReader::new(out);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match lines.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let line = String::from_utf8_lossy(&buf).into_owned();
        if line.parse::<CheckPoint>().is_err() {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line} [{id}]");
        }
        events.post_blocking(ChildEvent::Line {
            id: id.to_string(),
            generation,
            line,
        });
    }
}

/// Spawn `exe url` with stdout and stderr read by helper threads that report into `events`.
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
    let mut child = cmd.spawn()?;
    let handle = ChildHandle {
        pid: child.id() as i32,
        reaped: Arc::new(AtomicBool::new(false)),
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let reaped = handle.reaped.clone();
    let id = id.to_string();
    let err_events = events.clone();
    let err_id = id.clone();
    let err_thread = std::thread::Builder::new()
        .name(format!("np-inst-err-{id}"))
        .spawn(move || {
            if let Some(e) = stderr {
                pump(e, &err_id, generation, &err_events);
            }
        });
    let spawned = std::thread::Builder::new()
        .name(format!("np-inst-{id}"))
        .spawn(move || {
            if let Some(o) = stdout {
                pump(o, &id, generation, &events);
            }
            if let Ok(t) = err_thread {
                let _ = t.join();
            }
            let success = child.wait().map(|s| s.success()).unwrap_or(false);
            reaped.store(true, Ordering::SeqCst);
            events.post_blocking(ChildEvent::Exited {
                id,
                generation,
                success,
            });
        });
    if let Err(e) = spawned {
        handle.kill();
        return Err(e);
    }
    Ok(handle)
}
