//! The control thread: what runs beside the data plane. For single-end forwarding that is
//! the CHECK_POINT ticker, DNS refresh and the graceful drain; for the dual-end tunnel the
//! client handshake, the control loop (signals, health, routing) and restart backoff.

pub mod backoff;
pub mod client;
pub mod dns;
pub mod run_error;
pub mod single_end;
pub mod tunnel;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::{post_all, Command, WorkerHandle};
use crate::config::Config;
use crate::stats::{self, WorkerStats};

/// How often the drain looks whether the last session ended.
const DRAIN_POLL: Duration = Duration::from_millis(20);

fn live_sessions(stats: &[Arc<WorkerStats>]) -> i64 {
    let s = stats::snapshot(stats.iter().map(|s| s.as_ref()));
    s.tcps + s.udps
}

/// The graceful drain, for every mode: stop accepting, wait up to `NP_SHUTDOWN_TIMEOUT`
/// for the live sessions to end, then close whatever is left.
pub(crate) async fn drain<M: std::fmt::Debug>(
    cfg: &Config,
    workers: &[WorkerHandle<M>],
    stats: &[Arc<WorkerStats>],
) {
    let live = live_sessions(stats);
    log::info!(
        "Shutdown requested: draining {live} live session(s) within {:?}",
        cfg.env.shutdown_timeout
    );
    post_all(workers, || Command::StopAccepting);
    let deadline = Instant::now() + cfg.env.shutdown_timeout;
    while live_sessions(stats) > 0 && Instant::now() < deadline {
        monoio::time::sleep(DRAIN_POLL).await;
    }
    let left = live_sessions(stats);
    if left > 0 {
        log::warn!("Shutdown timeout: closing {left} live session(s)");
    }
    post_all(workers, || Command::CloseAll);
}
