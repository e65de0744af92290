//! SIGINT/SIGTERM → a process-wide "shutdown requested" flag that every thread can watch.
//!
//! The signal handler only stores to an atomic (async-signal-safe). Runtimes poll
//! [`requested`] from a cheap periodic task, or wait on [`wait`], so no thread ever
//! blocks inside a handler and no runtime blocks on a channel.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// How often [`wait`] looks at the flag: short enough for a prompt drain, long enough to be free.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

extern "C" fn on_signal(_signum: libc::c_int) {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Install the SIGINT/SIGTERM handlers (idempotent). SIGPIPE is ignored so a write to a
/// vanished peer is an `EPIPE` error on that connection, never a process kill.
pub fn install() {
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
}

/// Resolve once a shutdown is requested. Runs on a monoio runtime with the timer enabled.
pub async fn wait() {
    while !requested() {
        monoio::time::sleep(POLL_INTERVAL).await;
    }
}
