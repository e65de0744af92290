//! The one thread (`np-children`) that watches every child of every master in the process:
//! one epoll set holds each child's stdout and stderr pipes (non-blocking) and its pidfd,
//! so 500 instances cost this one thread, not two each.
//!
//! - Output: a readable pipe is read (a few 16 KiB reads per wake-up, so one child cannot
//!   hog the thread), split into lines ([`LineBuf`], bounded), each non-CHECK_POINT line
//!   echoed to the master's stdout as `<line> [<id>]` (as Go does) and posted to its
//!   master's queue in order. A full queue (the master's runtime is behind) keeps the line
//!   held and takes the pipe out of the epoll set until the line is posted (retried every
//!   [`RETRY`]): the child's pipe then fills and the child waits in `write`. The master's
//!   memory never grows with a child's output, and nothing here waits on the runtime.
//! - Exit: the pidfd turns readable, the child is reaped at once (`waitpid`, no zombie),
//!   what it wrote before exiting is read to the end, and only then is `Exited` posted,
//!   after the child's last lines. A grandchild still holding a pipe does not delay it.
//!   Kernels without `pidfd_open` (before 5.3) fall back to a `waitpid(WNOHANG)` look at
//!   each child every [`POLL_EXIT`].
//!
//! The thread starts with the first child and lives as long as the process. It never
//! forks: children are spawned by the master's runtime thread (their parent-death signal
//! is tied to the forking thread), then handed over here.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use super::lines::LineBuf;
use crate::stats::CheckPoint;
use crate::sys::{self, Epoll};
use crate::wake::{QueueTx, Rejected};

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

/// How often held lines are offered again to a full queue.
const RETRY: Duration = Duration::from_millis(5);
/// How often a child without pidfd is asked whether it exited.
const POLL_EXIT: Duration = Duration::from_millis(100);
/// Size of one read from a pipe.
const READ_CHUNK: usize = 16 * 1024;
/// Reads from one pipe per wake-up (level-triggered epoll brings the rest next round);
/// after the child's exit, the reads that end its stream (a pipe holds 64 KiB).
const READS_PER_WAKE: usize = 4;
/// Epoll token of the registration wake-up pipe.
const WAKE_TOKEN: u64 = u64::MAX;
/// Token slots of a child: its two pipes and its pidfd.
const PIDFD_SLOT: u64 = 2;

/// A spawned child handed to the watcher thread.
pub struct Watched {
    /// Instance id.
    pub id: String,
    /// Spawn generation.
    pub generation: u64,
    /// The master's queue.
    pub events: QueueTx<ChildEvent>,
    /// The child, its stdout and stderr still in it (piped).
    pub child: Child,
    /// Its pidfd, if the kernel has `pidfd_open`: readable once the child exited.
    pub pidfd: Option<Arc<OwnedFd>>,
    /// Set once the child is reaped (its pid may then be recycled).
    pub reaped: Arc<AtomicBool>,
}

/// The watcher thread's inbox: registrations plus the pipe that wakes its epoll wait.
struct Inbox {
    tx: Sender<Watched>,
    wake: File,
}

static INBOX: Mutex<Option<Inbox>> = Mutex::new(None);

/// Hand `w` to the watcher thread, starting the thread with the first child. On failure
/// the child comes back, to be killed and reaped by the caller.
pub fn watch(w: Watched) -> Result<(), (io::Error, Box<Watched>)> {
    let mut inbox = INBOX.lock().unwrap_or_else(PoisonError::into_inner);
    if inbox.is_none() {
        match start() {
            Ok(started) => *inbox = Some(started),
            Err(e) => return Err((e, Box::new(w))),
        }
    }
    let Some(inbox) = inbox.as_mut() else {
        return Err((io::Error::other("child watcher not running"), Box::new(w)));
    };
    // Unbounded: a registration never waits (one per spawn, taken at once).
    if let Err(e) = inbox.tx.try_send(w) {
        let gone = io::Error::other("child watcher is gone");
        return Err((gone, Box::new(e.into_inner())));
    }
    // A full wake pipe already holds a wake-up; any other failure cannot happen to a
    // pipe whose read end the thread keeps.
    let _ = inbox.wake.write(&[1]);
    Ok(())
}

fn start() -> io::Result<Inbox> {
    let epoll = Epoll::new()?;
    let (wake_rx, wake_tx) = sys::pipe()?;
    epoll.add(wake_rx.as_raw_fd(), libc::EPOLLIN as u32, WAKE_TOKEN)?;
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut watcher = Watcher {
        epoll,
        wake: File::from(wake_rx),
        inbox: rx,
        children: HashMap::new(),
        next_key: 0,
        scratch: vec![0; READ_CHUNK],
    };
    std::thread::Builder::new()
        .name("np-children".into())
        .spawn(move || watcher.run())?;
    Ok(Inbox {
        tx,
        wake: File::from(wake_tx),
    })
}

/// One output pipe of a child.
struct Stream {
    /// `None` once the stream ended (and left the epoll set).
    file: Option<File>,
    lines: LineBuf,
    /// A line the full queue did not take yet: the stream is paused until it goes.
    held: Option<ChildEvent>,
}

impl Stream {
    fn new(fd: Option<OwnedFd>) -> Stream {
        let file = fd.and_then(|fd| {
            sys::set_nonblocking(std::os::fd::AsFd::as_fd(&fd), true).ok()?;
            Some(File::from(fd))
        });
        Stream {
            file,
            lines: LineBuf::default(),
            held: None,
        }
    }
}

/// A child being watched.
struct Entry {
    w: Watched,
    streams: [Stream; 2],
    /// In the epoll set until the child is reaped; `None` on kernels without pidfd: exit
    /// is then polled.
    pidfd: Option<Arc<OwnedFd>>,
    /// `Some(success)` once reaped.
    exit: Option<bool>,
}

impl Entry {
    fn paused(&self) -> bool {
        self.streams.iter().any(|s| s.held.is_some())
    }
}

struct Watcher {
    epoll: Epoll,
    wake: File,
    inbox: Receiver<Watched>,
    children: HashMap<u64, Entry>,
    next_key: u64,
    scratch: Vec<u8>,
}

impl Watcher {
    fn run(&mut self) {
        let mut ready = Vec::new();
        loop {
            ready.clear();
            if let Err(e) = self.epoll.wait(&mut ready, self.timeout()) {
                log::error!("child watcher: epoll_wait failed: {e}");
                return;
            }
            for &(token, _) in &ready {
                if token == WAKE_TOKEN {
                    continue;
                }
                let (key, slot) = (token >> 2, token & 3);
                if slot == PIDFD_SLOT {
                    self.try_reap(key);
                } else {
                    self.pump(key, slot as usize);
                }
                self.finish_if_done(key);
            }
            // Registrations after the batch: no token of this batch names a new child.
            self.take_registrations();
            self.revisit();
        }
    }

    fn timeout(&self) -> Option<Duration> {
        let values = || self.children.values();
        // Held lines, or an exit waiting for room in the queue.
        if values().any(|e| e.paused() || e.exit.is_some()) {
            Some(RETRY)
        } else if values().any(|e| e.pidfd.is_none() && e.exit.is_none()) {
            Some(POLL_EXIT)
        } else {
            None
        }
    }

    fn take_registrations(&mut self) {
        let mut drain = [0u8; 64];
        while matches!(self.wake.read(&mut drain), Ok(n) if n > 0) {}
        while let Ok(w) = self.inbox.try_recv() {
            self.add(w);
        }
    }

    fn add(&mut self, mut w: Watched) {
        let key = self.next_key;
        self.next_key += 1;
        let out = w.child.stdout.take().map(OwnedFd::from);
        let err = w.child.stderr.take().map(OwnedFd::from);
        let streams = [Stream::new(out), Stream::new(err)];
        for (slot, s) in streams.iter().enumerate() {
            if let Some(f) = &s.file {
                self.watch_fd(f.as_raw_fd(), libc::EPOLLIN as u32, key << 2 | slot as u64);
            }
        }
        let pidfd = w.pidfd.take();
        if let Some(fd) = &pidfd {
            self.watch_fd(fd.as_raw_fd(), libc::EPOLLIN as u32, key << 2 | PIDFD_SLOT);
        }
        let entry = Entry {
            w,
            streams,
            pidfd,
            exit: None,
        };
        self.children.insert(key, entry);
        // It may have exited already (a pidfd of an exited child is readable at once).
        self.try_reap(key);
        self.finish_if_done(key);
    }

    fn watch_fd(&self, fd: i32, events: u32, token: u64) {
        if let Err(e) = self.epoll.add(fd, events, token) {
            log::error!("child watcher: epoll_ctl failed: {e}");
        }
    }

    /// Children with held lines, without pidfd, or exited with pipes still open.
    fn revisit(&mut self) {
        let keys: Vec<u64> = self
            .children
            .iter()
            .filter(|(_, e)| e.paused() || e.pidfd.is_none())
            .map(|(k, _)| *k)
            .collect();
        for key in keys {
            if self.children.get(&key).is_some_and(|e| e.exit.is_none()) {
                self.try_reap(key);
            }
            for slot in 0..2 {
                self.pump(key, slot);
            }
            self.finish_if_done(key);
        }
    }

    /// Reap the child if it has exited; then read what it left in its pipes.
    fn try_reap(&mut self, key: u64) {
        let Some(e) = self.children.get_mut(&key) else {
            return;
        };
        if e.exit.is_some() {
            return;
        }
        let success = match e.w.child.try_wait() {
            Ok(None) => return,
            Ok(Some(status)) => status.success(),
            Err(_) => false,
        };
        e.exit = Some(success);
        e.w.reaped.store(true, Ordering::SeqCst);
        if let Some(fd) = e.pidfd.take() {
            // Explicitly: the ChildHandle may keep the descriptor open.
            let _ = self.epoll.delete(fd.as_raw_fd());
        }
        for slot in 0..2 {
            self.pump(key, slot);
        }
    }

    /// Hand on held and complete lines of one stream, then read it while the queue takes
    /// lines. After the child's exit, an empty pipe counts as ended.
    fn pump(&mut self, key: u64, slot: usize) {
        let Some(e) = self.children.get_mut(&key) else {
            return;
        };
        let exited = e.exit.is_some();
        let w = &e.w;
        let s = &mut e.streams[slot];
        let was_paused = s.held.is_some();
        let mut reads = 0;
        loop {
            if !deliver(w, s) {
                if !was_paused {
                    if let Some(f) = &s.file {
                        let _ = self.epoll.modify(f.as_raw_fd(), 0, key << 2 | slot as u64);
                    }
                }
                return;
            }
            let Some(file) = s.file.as_mut() else {
                return;
            };
            let got = if reads < READS_PER_WAKE {
                reads += 1;
                file.read(&mut self.scratch)
            } else if exited {
                // What an exited child left is read by now: the rest is a grandchild's.
                Ok(0)
            } else {
                break;
            };
            match got {
                Ok(n) if n > 0 => s.lines.push(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !exited => break,
                // End of file, an error, or nothing left by an exited child.
                _ => {
                    let _ = self.epoll.delete(file.as_raw_fd());
                    s.file = None;
                    s.lines.end();
                }
            }
        }
        if was_paused {
            if let Some(f) = &s.file {
                let _ =
                    self.epoll
                        .modify(f.as_raw_fd(), libc::EPOLLIN as u32, key << 2 | slot as u64);
            }
        }
    }

    /// Post `Exited` once the child is reaped and both its streams are ended and delivered.
    fn finish_if_done(&mut self, key: u64) {
        let Some(e) = self.children.get(&key) else {
            return;
        };
        let Some(success) = e.exit else {
            return;
        };
        if e.streams
            .iter()
            .any(|s| s.file.is_some() || s.held.is_some())
        {
            return;
        }
        let ev = ChildEvent::Exited {
            id: e.w.id.clone(),
            generation: e.w.generation,
            success,
        };
        match e.w.events.try_post(ev) {
            // Retried on the next round (the timeout is short while an exit waits).
            Err(Rejected::Full(_)) => {}
            Ok(()) | Err(Rejected::Closed(_)) => {
                self.children.remove(&key);
            }
        }
    }
}

/// Post the held line and then each complete line; false when the queue is full (the line
/// stays held). Lines for a master that is gone are dropped.
fn deliver(w: &Watched, s: &mut Stream) -> bool {
    loop {
        let ev = match s.held.take() {
            Some(ev) => ev,
            None => {
                let Some(line) = s.lines.next_line() else {
                    return true;
                };
                echo(&line, &w.id);
                ChildEvent::Line {
                    id: w.id.clone(),
                    generation: w.generation,
                    line,
                }
            }
        };
        match w.events.try_post(ev) {
            Ok(()) | Err(Rejected::Closed(_)) => {}
            Err(Rejected::Full(ev)) => {
                s.held = Some(ev);
                return false;
            }
        }
    }
}

/// Copy a child's line to the master's stdout as Go does, CHECK_POINTs excepted.
fn echo(line: &str, id: &str) {
    if line.parse::<CheckPoint>().is_err() {
        let mut stdout = io::stdout().lock();
        let _ = writeln!(stdout, "{line} [{id}]");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};
    use std::time::Instant;

    /// Wait on the test thread (no runtime here) until `f` holds or `limit` passes.
    fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + limit;
        while !f() {
            if Instant::now() >= end {
                return false;
            }
            std::thread::park_timeout(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn a_full_queue_slows_the_child_and_every_line_comes_before_the_exit() {
        let (tx, rx) = crate::wake::queue(64);
        // ~250 KB: more than a pipe, the watcher's buffer and the queue hold together.
        // CHECK_POINT lines, so that nothing is echoed to the test's stdout.
        let script = "i=1; while [ $i -le 3000 ]; do echo \"2026-01-02 00:00:00.000  EVENT  CHECK_POINT|MODE=1|PING=3ms|POOL=0|TCPS=1|UDPS=0|TCPRX=$i|TCPTX=1|UDPRX=0|UDPTX=0\"; i=$((i+1)); done; echo done >&2";
        let child = Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let reaped = Arc::new(AtomicBool::new(false));
        let pidfd = sys::pidfd_open(child.id() as libc::pid_t)
            .ok()
            .map(Arc::new);
        let w = Watched {
            id: "t".into(),
            generation: 7,
            events: tx,
            child,
            pidfd,
            reaped: reaped.clone(),
        };
        assert!(watch(w).is_ok());
        // Nobody drains the queue: the child must be stuck writing, not done.
        assert!(wait_until(Duration::from_secs(5), || rx
            .try_recv()
            .is_some()));
        std::thread::park_timeout(Duration::from_millis(300));
        assert!(!reaped.load(Ordering::SeqCst), "the child was slowed down");
        let (mut out, mut err, mut exited) = (1, 0, None);
        let drained = wait_until(Duration::from_secs(30), || {
            while let Some(ev) = rx.try_recv() {
                assert!(exited.is_none(), "an event after Exited: {ev:?}");
                match ev {
                    ChildEvent::Line {
                        line, generation, ..
                    } => {
                        assert_eq!(generation, 7);
                        if line == "done" {
                            err += 1;
                        } else {
                            out += 1;
                            let cp: CheckPoint = line.parse().expect("a CHECK_POINT");
                            assert_eq!(cp.traffic[0], out, "stdout in order");
                        }
                    }
                    ChildEvent::Exited { success, .. } => exited = Some(success),
                }
            }
            exited.is_some()
        });
        assert!(drained, "the exit arrives ({out} lines so far)");
        assert_eq!((out, err, exited), (3000, 1, Some(true)));
        assert!(reaped.load(Ordering::SeqCst));
    }

    #[test]
    fn without_a_pidfd_the_exit_is_polled_and_still_comes_after_the_lines() {
        let (tx, rx) = crate::wake::queue(16);
        let child = Command::new("sh")
            .args(["-c", "echo one; echo two >&2; exit 3"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh starts");
        let reaped = Arc::new(AtomicBool::new(false));
        let w = Watched {
            id: "nopidfd".into(),
            generation: 1,
            events: tx,
            child,
            pidfd: None,
            reaped: reaped.clone(),
        };
        assert!(watch(w).is_ok());
        let mut seen = Vec::new();
        let exited = wait_until(Duration::from_secs(5), || {
            while let Some(ev) = rx.try_recv() {
                seen.push(ev);
            }
            matches!(seen.last(), Some(ChildEvent::Exited { .. }))
        });
        assert!(exited, "exit polled: {seen:?}");
        let mut lines: Vec<&str> = seen
            .iter()
            .filter_map(|ev| match ev {
                ChildEvent::Line { line, .. } => Some(line.as_str()),
                ChildEvent::Exited { .. } => None,
            })
            .collect();
        lines.sort_unstable();
        assert_eq!(lines, ["one", "two"]);
        assert!(matches!(
            seen.last(),
            Some(ChildEvent::Exited { success: false, .. })
        ));
        assert!(reaped.load(Ordering::SeqCst));
    }
}
