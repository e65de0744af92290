//! Worker threads: one monoio runtime per core, each owning its listeners, its sessions
//! and its pipe pool, driven by commands from its mailbox.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bus::{self, Command, Mailbox, WorkerHandle};
use crate::config::{BlockSet, ProxyProtocol};
use crate::limit::{RateLimiter, SlotLimit};
use crate::runtime::{self, ActiveDriver};
use crate::stats::WorkerStats;

use super::dial::SourcePolicy;
use super::flag::LocalFlag;
use super::pipes::PipePool;
use super::relay::RelayKind;
use super::sessions::SessionTable;
use super::tasks::TaskSet;

/// Everything a forwarding worker needs that is the same on every core (read-only, shared).
#[derive(Debug)]
pub struct ForwardSpec {
    /// Resolved target addresses at start, in configured order (`None` = not resolved yet).
    pub targets: Arc<[Option<SocketAddr>]>,
    /// `dial=` policy, shared so its one-way fall-back holds for the whole process.
    pub source: SourcePolicy,
    /// `NP_TCP_DIAL_TIMEOUT`.
    pub tcp_dial_timeout: Duration,
    /// `read=`: session idle timeout (zero = none).
    pub read_timeout: Duration,
    /// `NP_UDP_READ_TIMEOUT`: UDP session idle expiry.
    pub udp_read_timeout: Duration,
    /// `NP_UDP_DATA_BUF_SIZE`: largest datagram.
    pub udp_buf_size: usize,
    /// `NP_TCP_DATA_BUF_SIZE`: copy buffer for the buffered relay.
    pub tcp_buf_size: usize,
    /// TCP keepalive period (`NP_REPORT_INTERVAL`).
    pub keepalive: Duration,
    /// `proxy=`.
    pub proxy: ProxyProtocol,
    /// `block=`.
    pub block: BlockSet,
    /// `slot=`, process-wide.
    pub slots: Arc<SlotLimit>,
    /// `rate=` on bytes read from users.
    pub rate_rx: Option<RateLimiter>,
    /// `rate=` on bytes written to users.
    pub rate_tx: Option<RateLimiter>,
    /// How plaintext TCP is relayed.
    pub relay: RelayKind,
}

impl ForwardSpec {
    /// A spec with NodePass defaults for everything but the targets (tests, benches).
    pub fn with_targets(targets: Vec<Option<SocketAddr>>) -> Self {
        ForwardSpec {
            targets: targets.into(),
            source: SourcePolicy::new(None::<IpAddr>),
            tcp_dial_timeout: Duration::from_secs(5),
            read_timeout: Duration::ZERO,
            udp_read_timeout: Duration::from_secs(30),
            udp_buf_size: 16384,
            tcp_buf_size: 16384,
            keepalive: Duration::from_secs(5),
            proxy: ProxyProtocol::Off,
            block: BlockSet::default(),
            slots: SlotLimit::new(0),
            rate_rx: None,
            rate_tx: None,
            relay: RelayKind::Splice,
        }
    }
}

/// One worker's private state, shared by its tasks (single-threaded: `Rc`, `Cell`).
pub struct WorkerCtx {
    /// Worker index (also its thread name suffix).
    pub index: usize,
    /// The shared spec.
    pub spec: Arc<ForwardSpec>,
    /// This worker's counters.
    pub stats: Arc<WorkerStats>,
    /// Current target addresses (replaced by DNS refreshes); this worker's own copy.
    pub targets: RefCell<Rc<[Option<SocketAddr>]>>,
    /// Round-robin position; starts at the worker index so workers spread their picks.
    pub next_target: Cell<usize>,
    /// Raised when the worker must stop accepting.
    pub stopping: LocalFlag,
    /// Raised when every live session must end now.
    pub closing: LocalFlag,
    /// Live sessions, for forced teardown.
    pub sessions: Rc<SessionTable>,
    /// Every task this worker spawned, so none outlives its runtime.
    pub tasks: Rc<TaskSet>,
    /// Splice pipes.
    pub pipes: PipePool,
    /// The driver this runtime runs on.
    pub driver: ActiveDriver,
}

impl WorkerCtx {
    /// Spawn a task on this worker; [`WorkerCtx::close`] ends it if it has not ended.
    pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + 'static) {
        self.tasks.spawn(fut);
    }

    /// The end of a worker's life, for every mode: stop accepting, shut every session's
    /// sockets down, give the sessions `CLOSE_GRACE` to finish, then cancel whatever task
    /// is left and wait for it, so that every socket closes inside the runtime (a task
    /// left pending would leak its sockets: see `tasks.rs`).
    pub async fn close(&self) {
        self.stopping.raise();
        self.closing.raise();
        self.sessions.shutdown_all();
        // At least one turn, so the accept loops see their listeners shut (`accept.rs`)
        // and end by themselves, rather than be cancelled with an accept in flight.
        let deadline = std::time::Instant::now() + CLOSE_GRACE;
        loop {
            monoio::time::sleep(DRAIN_POLL).await;
            if self.sessions.len() == 0 || std::time::Instant::now() >= deadline {
                break;
            }
        }
        self.tasks.cancel_all();
        let deadline = std::time::Instant::now() + CLOSE_GRACE;
        while self.tasks.live() > 0 && std::time::Instant::now() < deadline {
            monoio::time::sleep(Duration::from_millis(2)).await;
        }
        if self.tasks.live() > 0 {
            log::warn!(
                "worker {}: {} tasks did not end at close; their sockets stay open",
                self.index,
                self.tasks.live()
            );
        }
        // One more turn of the runtime: io_uring closes the dropped sockets through
        // submitted close operations.
        monoio::time::sleep(Duration::from_millis(1)).await;
    }

    /// The rotation start for the next dial.
    pub fn take_rotation(&self) -> usize {
        let n = self.next_target.get();
        self.next_target.set(n.wrapping_add(1));
        n
    }
}

/// The listening sockets one worker owns.
pub struct WorkerSockets {
    /// TCP listener (`None` with `notcp`).
    pub tcp: Option<std::net::TcpListener>,
    /// UDP socket (`None` with `noudp`).
    pub udp: Option<std::net::UdpSocket>,
}

/// The running data plane: a handle, counters and thread per worker.
pub struct DataPlane {
    /// Command handles, one per worker.
    pub handles: Vec<WorkerHandle>,
    /// Counters, one set per worker.
    pub stats: Vec<Arc<WorkerStats>>,
    /// The driver the workers run on.
    pub driver: ActiveDriver,
    pub(super) threads: Vec<JoinHandle<()>>,
}

impl DataPlane {
    /// Send a command to every worker (commands are cloned per worker by `make`).
    pub fn broadcast(&self, make: impl Fn() -> Command) {
        for (i, h) in self.handles.iter().enumerate() {
            if h.post(make()).is_err() {
                log::warn!("worker {i}: command queue full or closed");
            }
        }
    }

    /// Wait for every worker thread to end.
    pub fn join(self) {
        drop(self.handles);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Start one forwarding worker per entry of `sockets`, pinned to cores in order.
pub fn start_forwarder(
    spec: Arc<ForwardSpec>,
    sockets: Vec<WorkerSockets>,
    driver: ActiveDriver,
) -> io::Result<DataPlane> {
    let stats = (0..sockets.len()).map(|_| Arc::default()).collect();
    spawn_workers(spec, sockets, stats, driver, |ctx, socks, mailbox| {
        worker_main(ctx, socks, mailbox)
    })
}

/// Spawn one `np-worker-{i}` thread per entry of `items`, pinned to cores in order, each
/// with its own [`WorkerCtx`] and monoio runtime running `main` until it returns.
/// `stats` (one per worker) are the counters the workers add to; a caller that restarts
/// its data plane passes the same ones again, so counters stay cumulative per process.
pub(crate) fn spawn_workers<S, F, Fut>(
    spec: Arc<ForwardSpec>,
    items: Vec<S>,
    stats: Vec<Arc<WorkerStats>>,
    driver: ActiveDriver,
    main: F,
) -> io::Result<DataPlane>
where
    S: Send + 'static,
    F: Fn(Rc<WorkerCtx>, S, Mailbox) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let mut plane = DataPlane {
        handles: Vec::new(),
        stats: Vec::new(),
        driver,
        threads: Vec::new(),
    };
    for ((index, item), stats) in items.into_iter().enumerate().zip(stats) {
        let (handle, mailbox) = bus::mailbox();
        let core = (!cores.is_empty()).then(|| cores[index % cores.len()]);
        let spec = Arc::clone(&spec);
        let worker_stats = Arc::clone(&stats);
        let main = main.clone();
        let thread = std::thread::Builder::new()
            .name(format!("np-worker-{index}"))
            .spawn(move || {
                if let Some(core) = core {
                    core_affinity::set_for_current(core);
                }
                let ctx = WorkerCtx {
                    index,
                    // A copy per worker: cloning it per connection then touches no memory
                    // another core writes.
                    targets: RefCell::new(spec.targets.iter().copied().collect()),
                    spec,
                    stats: worker_stats,
                    next_target: Cell::new(index),
                    stopping: LocalFlag::default(),
                    closing: LocalFlag::default(),
                    sessions: Rc::default(),
                    tasks: Rc::default(),
                    pipes: PipePool::default(),
                    driver,
                };
                let run = runtime::block_on(driver, move || async move {
                    // Spawned from inside the runtime (monoio needs its context).
                    let ctx = Rc::new(ctx);
                    ctx.spawn(trim_pipes(Rc::clone(&ctx)));
                    main(ctx, item, mailbox).await
                });
                match run {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) | Err(e) => {
                        // A process with a dead worker would silently drop a share of its
                        // users: stop the whole process instead.
                        log::error!("worker {index} stopped: {e}; shutting down");
                        crate::shutdown::request();
                    }
                }
            })?;
        plane.handles.push(handle);
        plane.stats.push(stats);
        plane.threads.push(thread);
    }
    Ok(plane)
}

/// How often a worker looks whether its cached splice pipes went unused.
const PIPE_TRIM_EVERY: Duration = Duration::from_secs(2);

/// Close cached pipes a quiet worker does not need (see `PipePool::trim`).
async fn trim_pipes(ctx: Rc<WorkerCtx>) {
    loop {
        monoio::time::sleep(PIPE_TRIM_EVERY).await;
        let closed = ctx.pipes.trim();
        if closed > 0 {
            log::debug!("worker {}: closed {closed} unused splice pipes", ctx.index);
        }
    }
}

/// How often a draining worker looks whether its last session has ended.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// How long a worker waits for sessions to finish after shutting their sockets down.
const CLOSE_GRACE: Duration = Duration::from_millis(500);

async fn worker_main(ctx: Rc<WorkerCtx>, socks: WorkerSockets, mailbox: Mailbox) -> io::Result<()> {
    let native_nonblocking = ctx.driver == ActiveDriver::Legacy;
    if let Some(l) = socks.tcp {
        l.set_nonblocking(native_nonblocking)?;
        // Accepted users inherit these, so `serve_user` sets no options per connection.
        if let Err(e) = crate::net::tune_listener(&l, ctx.spec.keepalive) {
            log::warn!(
                "worker {}: listener options (TCP_NODELAY, keepalive): {e}",
                ctx.index
            );
        }
        let listener = monoio::net::TcpListener::from_std(l)?;
        ctx.spawn(super::forward::accept_loop(listener, Rc::clone(&ctx)));
    }
    if let Some(u) = socks.udp {
        u.set_nonblocking(native_nonblocking)?;
        let socket = monoio::net::udp::UdpSocket::from_std(u)?;
        ctx.spawn(super::udp::serve(socket, Rc::clone(&ctx)));
    }
    loop {
        match mailbox.recv().await {
            Some(Command::StopAccepting) => ctx.stopping.raise(),
            Some(Command::Targets(t)) => *ctx.targets.borrow_mut() = t.iter().copied().collect(),
            Some(Command::CloseAll) | None => break,
            // Tunnel commands never reach a forwarding worker.
            Some(_) => {}
        }
    }
    ctx.close().await;
    Ok(())
}
