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
#[allow(unsafe_code)]
pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` with a zeroed struct, a valid handler that only stores to an
        // atomic (async-signal-safe), and SA_RESTART; no other state is touched.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
    // SAFETY: setting SIGPIPE to SIG_IGN has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
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
