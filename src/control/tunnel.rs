//! The tunnel's control loop on the control thread, for both ends: waits for the control
//! channel, pings every `NP_REPORT_INTERVAL` (the first at once) and prints CHECK_POINT on
//! each pong, answers pings, routes `tcp`/`udp`/`verify` signals to the worker that owns
//! the named pool connection, applies the flush rule, and ends the run on a fatal error
//! (the caller restarts with backoff) or drains on shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bus::route::{self, NotRouted, Owners};
use crate::bus::{post_all, Command, Event, QueueRx, TunnelCommand, TunnelShared, WorkerHandle};
use crate::config::Config;
use crate::logging::{peer, Flood, Hit, FLOOD_REPORT_EVERY};
use crate::proto::{encode_line, Action, PoolId, Signal};
use crate::stats::{self, WorkerStats};
use crate::{runtime, shutdown};

use super::drain;
use super::run_error::RunError;

/// Signals the client's control loop keeps while their pool connection is not recorded
/// yet; beyond this many a flood of ids that never come is dropped (and counted).
pub const MAX_WAITING_SIGNALS: usize = 4096;

/// How often signals that wait for their pool id are looked at again.
const WAITING_RETRY: Duration = Duration::from_millis(5);

/// Which end runs the loop.
#[derive(Debug, Clone)]
pub enum End {
    /// The server; `fingerprint` is its certificate's (tls 1/2) for `verify`.
    Server {
        /// `sha256:…` of the served certificate, if TLS.
        fingerprint: Option<String>,
    },
    /// The client; `started` is when its handshake began.
    Client {
        /// When the handshake request was sent.
        started: Instant,
        /// Whether pool connections use TLS (the client sends `verify` too).
        tls: bool,
    },
}

/// What the loop watches and commands for one run.
pub struct Run<'a> {
    /// Worker mailboxes.
    pub workers: &'a [WorkerHandle<TunnelCommand>],
    /// Worker counters.
    pub stats: &'a [Arc<WorkerStats>],
    /// The run's shared state.
    pub shared: &'a TunnelShared,
    /// Events from the workers.
    pub events: QueueRx<Event>,
    /// Which end this is.
    pub end: End,
    /// The chosen mode for CHECK_POINT (server 1/2, client 2).
    pub mode: u8,
}

/// How a run ended.
#[derive(Debug)]
pub enum Outcome {
    /// SIGINT/SIGTERM: drained, exit.
    Shutdown,
    /// A fatal error; restart after backoff. The duration is how long the run was healthy
    /// (`None`: its control channel never came up).
    Fatal(RunError, Option<Duration>),
}

/// Run the control loop on this thread's own runtime until shutdown or a fatal error.
pub fn run(cfg: &Config, driver: runtime::ActiveDriver, run: Run<'_>) -> Result<Outcome, RunError> {
    let outcome = runtime::block_on(driver, || async {
        let mut state = State::new(cfg, run);
        let outcome = state.main().await;
        if matches!(outcome, Outcome::Shutdown) {
            drain(cfg, state.run.workers, state.run.stats).await;
        } else {
            post_all(state.run.workers, || Command::CloseAll);
        }
        outcome
    });
    outcome.map_err(RunError::ControlRuntime)
}

struct State<'a, 'c> {
    cfg: &'c Config,
    run: Run<'a>,
    /// Which worker holds each pool id.
    owners: Owners,
    /// Client: signals whose pool id has not been reported yet (at most
    /// [`MAX_WAITING_SIGNALS`]).
    waiting: Vec<(Instant, PoolId, Signal)>,
    /// Signals dropped: beyond `MAX_WAITING_SIGNALS`, or their worker's queue was full.
    dropped: Flood,
    ping_sent: Option<Instant>,
    errors: usize,
    verify_due: bool,
    up_since: Option<Instant>,
}

impl<'a, 'c> State<'a, 'c> {
    fn new(cfg: &'c Config, run: Run<'a>) -> Self {
        let verify_due = match &run.end {
            End::Server { fingerprint } => fingerprint.is_some(),
            End::Client { tls, .. } => *tls,
        };
        let owners = match &run.end {
            End::Server { .. } => Owners::ById {
                workers: run.workers.len(),
            },
            // A Go server's ids are random: the workers record who holds each.
            End::Client { .. } => Owners::Recorded,
        };
        State {
            cfg,
            run,
            owners,
            waiting: Vec::new(),
            dropped: Flood::new(FLOOD_REPORT_EVERY),
            ping_sent: None,
            errors: 0,
            verify_due,
            up_since: None,
        }
    }

    fn healthy_for(&self) -> Option<Duration> {
        self.up_since.map(|t| t.elapsed())
    }

    fn send(&self, sig: &Signal) {
        self.run.shared.send_signal(encode_line(sig, &self.cfg.key));
    }

    async fn main(&mut self) -> Outcome {
        if let Err(why) = self.wait_for_control().await {
            return match why {
                None => Outcome::Shutdown,
                Some(why) => Outcome::Fatal(why, None),
            };
        }
        self.up_since = Some(Instant::now());
        let interval = self.cfg.env.report_interval;
        let mut next_tick = Instant::now();
        let mut first = true;
        let mut stop = shutdown::Waiter::new();
        loop {
            let mut wait = next_tick.saturating_duration_since(Instant::now());
            if !self.waiting.is_empty() {
                // A signal came before its pool id was recorded: look again soon.
                wait = wait.min(WAITING_RETRY);
            }
            let ev = monoio::select! {
                ev = self.run.events.recv() => ev,
                _ = monoio::time::sleep(wait) => {
                    self.retry_waiting();
                    if Instant::now() >= next_tick {
                        next_tick = Instant::now() + interval;
                        self.tick(first);
                        first = false;
                    }
                    continue;
                }
                _ = stop.wait() => return Outcome::Shutdown,
            };
            let Some(ev) = ev else {
                return Outcome::Fatal(RunError::WorkersGone, self.healthy_for());
            };
            if let Err(why) = self.on_event(ev) {
                return Outcome::Fatal(why, self.healthy_for());
            }
        }
    }

    /// Wait for the control channel. `Err(None)` = shutdown requested.
    async fn wait_for_control(&mut self) -> Result<(), Option<RunError>> {
        let limit = self.cfg.env.handshake_timeout;
        let mut started = match &self.run.end {
            End::Server { .. } => {
                log::info!("Pending tunnel handshake...");
                None
            }
            End::Client { started, .. } => Some(*started),
        };
        let mut stop = shutdown::Waiter::new();
        loop {
            let wait = started.map_or(Duration::from_secs(3600), |s| {
                (s + limit).saturating_duration_since(Instant::now())
            });
            let ev = monoio::select! {
                ev = self.run.events.recv() => ev,
                _ = monoio::time::sleep(wait) => return Err(Some(RunError::HandshakeTimeout)),
                _ = stop.wait() => return Err(None),
            };
            match ev {
                None => return Err(Some(RunError::WorkersGone)),
                Some(Event::HandshakeDone(_)) => started = Some(Instant::now()),
                Some(Event::ControlUp(_)) => {
                    let ms = started.map_or(0, |s| s.elapsed().as_millis());
                    log::info!("Marking tunnel handshake as complete in {ms}ms");
                    return Ok(());
                }
                Some(other) => self.on_event(other).map_err(Some)?,
            }
        }
    }

    fn tick(&mut self, first: bool) {
        self.ping_sent = Some(Instant::now());
        self.send(&Signal::new(Action::Ping));
        let idle = self.run.shared.idle_total();
        if self.errors > idle / 2 {
            log::warn!("pool errors {} > idle/2: flushing the pool", self.errors);
            self.send(&Signal::new(Action::Flush));
            self.flush_local();
            self.errors = 0;
        }
        let now = Instant::now();
        let limit = self.cfg.env.pool_get_timeout;
        let before = self.waiting.len();
        self.waiting
            .retain(|(t, _, _)| now.duration_since(*t) < limit);
        self.errors += before - self.waiting.len();
        if let Some(n) = self.dropped.summary_due(now) {
            let secs = self.dropped.every_secs();
            log::warn!(
                "{n} signals dropped in the last {secs} s (too many waiting, or queue full)"
            );
        }
        if self.verify_due && !first {
            self.start_verify();
        }
    }

    fn flush_local(&mut self) {
        post_all(self.run.workers, || Command::Mode(TunnelCommand::PoolFlush));
    }

    fn start_verify(&mut self) {
        let fp = match &self.run.end {
            End::Server { fingerprint } => fingerprint.clone(),
            End::Client { .. } => None,
        };
        let idle = &self.run.shared.idle;
        let busiest =
            (0..idle.len()).max_by_key(|i| idle[*i].load(std::sync::atomic::Ordering::Relaxed));
        if let Some(w) = busiest.and_then(|i| self.run.workers.get(i)) {
            if w.post(Command::Mode(TunnelCommand::SendVerify { fp }))
                .is_ok()
            {
                self.verify_due = false;
            }
        }
    }

    fn on_event(&mut self, ev: Event) -> Result<(), RunError> {
        match ev {
            Event::Signal(sig) => self.on_signal(sig)?,
            Event::PoolMiss => self.errors += 1,
            Event::ControlLost(why) => return Err(RunError::ControlLost(why)),
            Event::VerifyFailed(why) => return Err(RunError::VerifyFailed(why)),
            Event::VerifyNoConn(_) => self.verify_due = true,
            Event::HandshakeDone(peer) => log::debug!("handshake from {peer} while running"),
            Event::ControlUp(_) => {}
        }
        Ok(())
    }

    fn on_signal(&mut self, sig: Signal) -> Result<(), RunError> {
        match sig.action {
            Action::Ping => self.send(&Signal::new(Action::Pong)),
            Action::Pong => self.checkpoint(),
            Action::Flush => {
                log::info!("flush requested by the peer");
                self.flush_local();
                self.errors = 0;
            }
            Action::Tcp | Action::Udp | Action::Verify => self.route(sig),
            Action::Unknown(ref word) => log::debug!("unknown signal `{}` skipped", peer(word)),
        }
        Ok(())
    }

    /// Route the waiting signals whose pool id has been recorded since.
    fn retry_waiting(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        for (since, id, sig) in waiting {
            match self.owners.take(id, &self.run.shared.owners) {
                Some(worker) => self.post_routed(worker, &sig),
                None => self.waiting.push((since, id, sig)),
            }
        }
    }

    fn route(&mut self, sig: Signal) {
        let own_fp = match &self.run.end {
            End::Server { fingerprint } => fingerprint.as_deref(),
            End::Client { .. } => None,
        };
        let (id, cmd) = match route::command_for(&sig, own_fp) {
            Ok(routed) => routed,
            Err(NotRouted::BadId) | Err(NotRouted::NotForAWorker) => {
                log::warn!(
                    "signal {} without a valid id skipped",
                    peer(sig.action.as_str())
                );
                return;
            }
        };
        let Some(worker) = self.owners.take(id, &self.run.shared.owners) else {
            if self.waiting.len() < MAX_WAITING_SIGNALS {
                self.waiting.push((Instant::now(), id, sig));
            } else if self.dropped.hit(Instant::now()) == Hit::Log {
                log::warn!(
                    "signal for pool connection {id} dropped: {MAX_WAITING_SIGNALS} signals \
                     already wait for theirs (more are counted)"
                );
            }
            return;
        };
        self.post_command(worker, cmd);
    }

    /// Post the command of an already-routed signal (its id was valid when it waited).
    fn post_routed(&mut self, worker: usize, sig: &Signal) {
        let own_fp = match &self.run.end {
            End::Server { fingerprint } => fingerprint.as_deref(),
            End::Client { .. } => None,
        };
        if let Ok((_, cmd)) = route::command_for(sig, own_fp) {
            self.post_command(worker, cmd);
        }
    }

    fn post_command(&mut self, worker: usize, cmd: TunnelCommand) {
        match self.run.workers.get(worker) {
            Some(w) if w.post(Command::Mode(cmd)).is_ok() => {}
            _ if self.dropped.hit(Instant::now()) == Hit::Log => {
                log::warn!("worker {worker}: command queue full, signal dropped (more are counted)")
            }
            _ => {}
        }
    }

    fn checkpoint(&self) {
        let ping = self.ping_sent.map_or(0, |t| t.elapsed().as_millis() as u64);
        let snap = stats::snapshot(self.run.stats.iter().map(|s| s.as_ref()));
        let line = stats::checkpoint_line(self.run.mode, ping, self.run.shared.idle_total(), &snap);
        crate::np_event!("{line}");
        crate::sys::release_free_heap();
    }
}
