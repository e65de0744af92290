//! Single-end forwarding's control loop (client `mode=1`): a CHECK_POINT line every
//! `NP_REPORT_INTERVAL`, then, on SIGINT/SIGTERM, the graceful drain of the workers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::WorkerHandle;
use crate::config::Config;
use crate::stats::{self, WorkerStats};
use crate::{runtime, shutdown};

/// What the control loop watches and commands.
pub struct Plane<'a> {
    /// Worker mailboxes.
    pub workers: &'a [WorkerHandle<Infallible>],
    /// Worker counters.
    pub stats: &'a [Arc<WorkerStats>],
    /// Targets as resolved at start (for the PING probe).
    pub targets: Vec<Option<SocketAddr>>,
}

/// Run until shutdown is requested, then drain within `NP_SHUTDOWN_TIMEOUT` and close
/// whatever is left. Returns once every worker has been told to close.
pub fn run(cfg: &Config, driver: runtime::ActiveDriver, plane: Plane<'_>) -> std::io::Result<()> {
    runtime::block_on(driver, || control_loop(cfg, plane))
}

async fn control_loop(cfg: &Config, plane: Plane<'_>) {
    let mut rotation = 0usize;
    let mut stop = shutdown::Waiter::new();
    loop {
        monoio::select! {
            _ = monoio::time::sleep(cfg.env.report_interval) => {}
            _ = stop.wait() => break,
        }
        let ping = probe_next_target(&plane.targets, &mut rotation, cfg.env.tcp_dial_timeout).await;
        let snap = stats::snapshot(plane.stats.iter().map(|s| s.as_ref()));
        let line = stats::checkpoint_line(1, ping, 0, &snap);
        crate::np_event!("{line}");
        crate::sys::release_free_heap();
    }
    super::drain(cfg, plane.workers, plane.stats).await;
}

/// Connect time to the next target in the rotation, in ms (0 when it cannot be reached).
async fn probe_next_target(
    targets: &[Option<SocketAddr>],
    rotation: &mut usize,
    timeout: Duration,
) -> u64 {
    if targets.is_empty() {
        return 0;
    }
    let addr = targets[*rotation % targets.len()];
    *rotation = rotation.wrapping_add(1);
    let Some(addr) = addr else { return 0 };
    let started = Instant::now();
    match monoio::time::timeout(timeout, monoio::net::TcpStream::connect_addr(addr)).await {
        Ok(Ok(_)) => started.elapsed().as_millis() as u64,
        _ => 0,
    }
}
