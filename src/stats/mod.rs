//! Traffic and session counters, one set per worker, summed for the CHECK_POINT line
//! ([`CheckPoint`], whose text the master parses back).
//!
//! Each worker only ever writes its own [`WorkerStats`] (relaxed atomics on memory no other
//! core writes), so counting costs no cross-core traffic; the control thread reads them all.

mod checkpoint;

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

pub use checkpoint::{CheckPoint, NotACheckPoint};

/// Counters one worker updates as it relays.
#[derive(Debug, Default)]
pub struct WorkerStats {
    /// Bytes received from users/targets on TCP (NodePass TCPRX).
    pub tcp_rx: AtomicU64,
    /// Bytes sent on TCP (TCPTX).
    pub tcp_tx: AtomicU64,
    /// UDP bytes received (UDPRX).
    pub udp_rx: AtomicU64,
    /// UDP bytes sent (UDPTX).
    pub udp_tx: AtomicU64,
    /// Live TCP sessions.
    pub tcp_sessions: AtomicI64,
    /// Live UDP sessions.
    pub udp_sessions: AtomicI64,
}

impl WorkerStats {
    /// Add to a byte counter.
    #[inline]
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// A consistent-enough sum of every worker's counters at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// TCPRX.
    pub tcp_rx: u64,
    /// TCPTX.
    pub tcp_tx: u64,
    /// UDPRX.
    pub udp_rx: u64,
    /// UDPTX.
    pub udp_tx: u64,
    /// TCPS.
    pub tcps: i64,
    /// UDPS.
    pub udps: i64,
}

/// Sum the counters of all workers.
pub fn snapshot<'a>(workers: impl IntoIterator<Item = &'a WorkerStats>) -> Snapshot {
    let mut s = Snapshot::default();
    for w in workers {
        s.tcp_rx += w.tcp_rx.load(Ordering::Relaxed);
        s.tcp_tx += w.tcp_tx.load(Ordering::Relaxed);
        s.udp_rx += w.udp_rx.load(Ordering::Relaxed);
        s.udp_tx += w.udp_tx.load(Ordering::Relaxed);
        s.tcps += w.tcp_sessions.load(Ordering::Relaxed);
        s.udps += w.udp_sessions.load(Ordering::Relaxed);
    }
    s
}

/// The CHECK_POINT line body exactly as NodePass prints it (PROTOCOL.md §6): the
/// [`CheckPoint`] of these values, sessions below zero shown as 0.
pub fn checkpoint_line(mode: u8, ping_ms: u64, pool: usize, s: &Snapshot) -> String {
    let sessions = |n: i64| u64::try_from(n).unwrap_or(0);
    CheckPoint {
        mode: mode.into(),
        ping_ms,
        pool: pool as u64,
        tcps: sessions(s.tcps),
        udps: sessions(s.udps),
        traffic: [s.tcp_rx, s.tcp_tx, s.udp_rx, s.udp_tx],
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_line_has_nodepass_field_order() {
        let a = WorkerStats::default();
        let b = WorkerStats::default();
        WorkerStats::add(&a.tcp_rx, 10);
        WorkerStats::add(&b.tcp_rx, 5);
        WorkerStats::add(&b.udp_tx, 7);
        b.tcp_sessions.fetch_add(2, Ordering::Relaxed);
        let s = snapshot([&a, &b]);
        assert_eq!(
            checkpoint_line(1, 3, 0, &s),
            "CHECK_POINT|MODE=1|PING=3ms|POOL=0|TCPS=2|UDPS=0|TCPRX=15|TCPTX=0|UDPRX=0|UDPTX=7"
        );
    }
}
