//! Strangers on the tunnel port: someone other than the tunnel client who showed itself on
//! a pool connection (bytes on an idle connection, or before its id). Process-wide, since
//! strangers outlive runs; read by the pool (how long a new connection must settle) and
//! written by the idle watch and the pool's take probe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long after the last stranger a flow `-` server stays careful (see [`careful`]).
const CAREFUL_FOR: Duration = Duration::from_secs(60);

/// When someone other than the tunnel client last showed itself on a pool connection of
/// this process (ms since [`epoch`], 0 = never). Process-wide: strangers outlive runs.
static STRANGER_SEEN_MS: AtomicU64 = AtomicU64::new(0);

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// Record that a stranger showed up (bytes on an idle pool connection, or before its id).
pub fn stranger_seen() {
    let ms = u64::try_from(epoch().elapsed().as_millis()).unwrap_or(u64::MAX);
    STRANGER_SEEN_MS.store(ms.max(1), Ordering::Relaxed);
}

/// Whether a stranger showed up within the last minute. While so, a flow `-` server lets
/// new pool connections settle before users get them ([`settle`]); otherwise a drained
/// pool's fresh connections serve users at once (new-connection rate).
pub fn careful() -> bool {
    let seen = STRANGER_SEEN_MS.load(Ordering::Relaxed);
    seen != 0
        && epoch()
            .elapsed()
            .as_millis()
            .saturating_sub(u128::from(seen))
            < CAREFUL_FOR.as_millis()
}

/// How long a new connection must stay silent on a flow `-` server before it may become
/// the control channel (always) or serve a user (while strangers were seen lately,
/// [`careful`]): someone on the client's host who connected to the tunnel port has
/// this long to show itself by sending a byte. Longer under attack, when many strangers
/// compete for the CPU with the one that is being judged.
pub fn settle() -> Duration {
    if careful() {
        Duration::from_millis(100)
    } else {
        Duration::from_millis(20)
    }
}
