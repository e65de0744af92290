//! Target name resolution off the worker threads: a resolver thread re-resolves host names
//! every `dns=` TTL and sends the fresh addresses to every worker.
//!
//! IP literals are never looked up. A failed lookup keeps the last good address (NodePass
//! falls back to the address it parsed at start). With `dns=0` (no caching in Go, which
//! resolves on every dial) we re-resolve every second instead, so no dial ever waits on DNS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::bus::{post_all, Command, WorkerHandle};
use crate::config::HostPort;
use crate::net;

/// Refresh period used when `dns=0`.
const NO_CACHE_PERIOD: Duration = Duration::from_secs(1);

/// Resolve every target once, now (call on the control thread at start).
pub fn resolve_all(targets: &[HostPort]) -> Vec<Option<SocketAddr>> {
    targets
        .iter()
        .map(|t| match net::resolve(t) {
            Ok(a) => Some(a),
            Err(e) => {
                log::warn!("cannot resolve target {t}: {e}; will retry");
                None
            }
        })
        .collect()
}

/// A running resolver thread; dropping or [`Resolver::stop`] ends it.
pub struct Resolver {
    stop: Sender<()>,
    thread: Option<JoinHandle<()>>,
}

impl Resolver {
    /// Start refreshing `targets` every `ttl` if any of them is a host name; `None` when
    /// all are IP literals (nothing to refresh).
    pub fn spawn<M: std::fmt::Debug + Send + 'static>(
        targets: Vec<HostPort>,
        initial: Vec<Option<SocketAddr>>,
        ttl: Duration,
        workers: Vec<WorkerHandle<M>>,
    ) -> Option<Resolver> {
        if targets.iter().all(|t| t.ip().is_some()) {
            return None;
        }
        let period = if ttl.is_zero() { NO_CACHE_PERIOD } else { ttl };
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let thread = std::thread::Builder::new()
            .name("np-dns".into())
            .spawn(move || refresh_loop(targets, initial, period, workers, stopped))
            .ok()?;
        Some(Resolver {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop the thread and wait for it.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.try_send(());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn refresh_loop<M: std::fmt::Debug>(
    targets: Vec<HostPort>,
    mut current: Vec<Option<SocketAddr>>,
    period: Duration,
    workers: Vec<WorkerHandle<M>>,
    stopped: Receiver<()>,
) {
    loop {
        match stopped.recv_timeout(period) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let fresh: Vec<Option<SocketAddr>> = targets
            .iter()
            .zip(&current)
            .map(|(t, old)| net::resolve(t).ok().or(*old))
            .collect();
        if fresh != current {
            log::debug!("targets re-resolved: {fresh:?}");
            let shared: Arc<[Option<SocketAddr>]> = fresh.clone().into();
            post_all(&workers, || Command::Targets(Arc::clone(&shared)));
            current = fresh;
        }
    }
}
