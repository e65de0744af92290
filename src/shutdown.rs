//! SIGINT/SIGTERM → a process-wide "shutdown requested" flag that every thread can watch.
//!
//! The signal handler only stores to an atomic and adds 1 to an eventfd (both
//! async-signal-safe). A runtime waits with [`wait`] for that eventfd to turn readable
//! (nobody reads it, so it stays readable for every waiter), so an idle control thread
//! sleeps until something happens instead of waking to look at the flag; where no eventfd
//! could be made, or on a runtime [`crate::runtime::block_on`] did not build, [`wait`]
//! looks at the flag every 50 ms instead.

use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static REQUESTED: AtomicBool = AtomicBool::new(false);
/// The eventfd the handler signals (-1 until [`install`] made it).
static EVENT_FD: AtomicI32 = AtomicI32::new(-1);
/// Owns that eventfd for the life of the process.
static EVENT: OnceLock<OwnedFd> = OnceLock::new();

/// How often [`wait`] looks at the flag when it cannot wait on the eventfd.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

extern "C" fn on_signal(_signum: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
    wake_waiters();
}

fn wake_waiters() {
    let fd = EVENT_FD.load(Ordering::SeqCst);
    if fd >= 0 {
        crate::sys::eventfd_signal(fd);
    }
}

/// Install the SIGINT/SIGTERM handlers (idempotent). SIGPIPE is ignored so a write to a
/// vanished peer is an `EPIPE` error on that connection, never a process kill.
pub fn install() {
    if EVENT.get().is_none() {
        match crate::sys::eventfd() {
            Ok(fd) => {
                let raw = fd.as_raw_fd();
                if EVENT.set(fd).is_ok() {
                    EVENT_FD.store(raw, Ordering::SeqCst);
                }
            }
            Err(e) => log::debug!("no eventfd for shutdown waits ({e}); they poll instead"),
        }
    }
    for sig in [libc::SIGINT, libc::SIGTERM] {
        if let Err(e) = crate::sys::set_signal_handler(sig, on_signal) {
            log::warn!("cannot install handler for signal {sig}: {e}");
        }
    }
    crate::sys::ignore_sigpipe();
}

/// True once SIGINT or SIGTERM arrived (or [`request`] was called).
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Ask for a shutdown from inside the process (tests, fatal configuration errors).
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
    wake_waiters();
}

/// Resolve once a shutdown is requested. Runs on a monoio runtime with the timer enabled.
/// A loop that waits again after every event keeps one [`Waiter`] instead.
pub async fn wait() {
    Waiter::new().wait().await
}

/// Waits for a shutdown request, as many times as asked, on one descriptor of the eventfd
/// (made at the first wait, closed with the waiter: a monoio stream must not outlive its
/// runtime, so a waiter lives inside the loop that uses it).
#[derive(Default)]
pub struct Waiter {
    event: Option<monoio::net::TcpStream>,
}

impl Waiter {
    /// A waiter with no descriptor yet.
    pub fn new() -> Waiter {
        Waiter::default()
    }

    /// Resolve once a shutdown is requested.
    pub async fn wait(&mut self) {
        if requested() {
            return;
        }
        if self.event.is_none() {
            self.event = event_stream();
        }
        if let Some(event) = &self.event {
            // Readable once signalled, and for good: a wake with the flag still down can
            // only be spurious, and is followed by the polling loop below.
            let _ = event.readable(false).await;
        }
        while !requested() {
            monoio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// A second descriptor of the eventfd on this thread's runtime (monoio waits for
/// readiness only on its socket types; an eventfd is pollable like one, and only
/// `readable` is ever asked of it).
fn event_stream() -> Option<monoio::net::TcpStream> {
    let driver = crate::runtime::current()?;
    let dup = EVENT.get()?.try_clone().ok()?;
    crate::runtime::adopt_tcp_stream(driver, std::net::TcpStream::from(dup)).ok()
}
