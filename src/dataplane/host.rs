//! The worker host: one thread and monoio runtime per core, pinned, each owning its
//! sessions, its tasks and its pipe pool, driven by commands from its mailbox, and closed
//! by one close sequence. It knows no mode: a mode brings its per-worker state as a
//! [`ModeWorker`] and its own command type.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::bus::{self, Command, Mailbox, WorkerHandle};
use crate::net::SocketExt;
use crate::runtime::{self, ActiveDriver};
use crate::stats::WorkerStats;

use super::pipes::PipePool;
use super::sessions::SessionTable;
use super::spec::SessionSpec;
use super::tasks::TaskSet;
use crate::wake::LocalFlag;

/// One worker's private state, shared by its tasks (single-threaded: `Rc`, `Cell`).
pub struct WorkerCtx {
    /// Worker index (also its thread name suffix).
    pub index: usize,
    /// How sessions are admitted and relayed (shared by every worker).
    pub spec: Arc<SessionSpec>,
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

    // How a socket enters this worker's runtime, and in which `O_NONBLOCK` mode, is
    // `runtime::adopt_*`'s one rule; these only supply the driver.

    /// A listening socket on this worker's runtime, given the stream options (TCP_NODELAY,
    /// keepalive) once: every socket it accepts inherits them, so no session sets options
    /// on an accepted stream.
    pub fn adopt_listener(&self, l: std::net::TcpListener) -> io::Result<monoio::net::TcpListener> {
        if let Err(e) = l.tune_listener(self.spec.keepalive) {
            log::warn!(
                "worker {}: listener options (TCP_NODELAY, keepalive): {e}",
                self.index
            );
        }
        runtime::adopt_tcp_listener(self.driver, l)
    }

    /// A UDP socket on this worker's runtime.
    pub fn adopt_udp(&self, u: std::net::UdpSocket) -> io::Result<monoio::net::udp::UdpSocket> {
        runtime::adopt_udp_socket(self.driver, u)
    }

    /// A connected socket handed over by another worker on this worker's runtime.
    pub fn adopt_stream(&self, fd: std::os::fd::OwnedFd) -> io::Result<monoio::net::TcpStream> {
        runtime::adopt_tcp_stream(self.driver, std::net::TcpStream::from(fd))
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

/// The running data plane: a mailbox handle, counters and a thread per worker. `M` is the
/// mode's own command type.
pub struct DataPlane<M> {
    /// Command handles, one per worker.
    pub handles: Vec<WorkerHandle<M>>,
    /// Counters, one set per worker.
    pub stats: Vec<Arc<WorkerStats>>,
    /// The driver the workers run on.
    pub driver: ActiveDriver,
    threads: Vec<JoinHandle<()>>,
}

impl<M> DataPlane<M> {
    /// Wait for every worker thread to end.
    pub fn join(self) {
        drop(self.handles);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// What a mode brings to the worker host: the state it keeps on each worker (started from
/// that worker's sockets by the `start` function given to [`spawn_workers`]) and its own
/// commands. The host does everything else: thread, pinning, runtime, mailbox, the
/// host's own commands, and the close sequence.
pub(crate) trait ModeWorker: 'static {
    /// The commands only this mode understands (`Infallible` if none).
    type Command: std::fmt::Debug + Send + 'static;

    /// Act on one of this mode's commands.
    fn on_command(&self, ctx: &Rc<WorkerCtx>, cmd: Self::Command);

    /// Called once before the worker's close sequence.
    fn before_close(&self) {}
}

/// Spawn one `np-worker-{i}` thread per entry of `items`, pinned to cores in order, each
/// with its own [`WorkerCtx`] and monoio runtime. On each, `start` turns the worker's
/// sockets into the mode's state (spawning its tasks), then the host serves the mailbox
/// until `CloseAll` and closes the worker. `stats` (one per worker) are the counters the
/// workers add to; a caller that restarts its data plane passes the same ones again, so
/// counters stay cumulative per process.
pub(crate) fn spawn_workers<S, W, F>(
    spec: Arc<SessionSpec>,
    items: Vec<S>,
    stats: Vec<Arc<WorkerStats>>,
    driver: ActiveDriver,
    start: F,
) -> io::Result<DataPlane<W::Command>>
where
    S: Send + 'static,
    W: ModeWorker,
    F: Fn(&Rc<WorkerCtx>, S) -> io::Result<W> + Clone + Send + 'static,
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
        let start = start.clone();
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
                    let worker = start(&ctx, item)?;
                    serve_mailbox(&ctx, &worker, mailbox).await;
                    worker.before_close();
                    ctx.close().await;
                    Ok::<(), io::Error>(())
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

/// Commands a worker handles back to back before its other tasks get a turn: as deep as
/// the mailbox, so only a flood (never a burst of real sessions) pays the pause.
const MAILBOX_BATCH: usize = 1024;

/// The host's side of the mailbox: its own commands here, the mode's to the mode, until
/// `CloseAll` or every handle is gone.
async fn serve_mailbox<W: ModeWorker>(
    ctx: &Rc<WorkerCtx>,
    worker: &W,
    mailbox: Mailbox<W::Command>,
) {
    let mut in_a_row = 0usize;
    loop {
        // A peer flooding signals keeps this mailbox non-empty, and `recv` then never
        // yields: every command would spawn its task before any of them ran (50,000 queued
        // tasks). After a batch taken back to back, give the spawned tasks a turn. A sleep,
        // not a yield (MONOIO.md: a self-wake is polled again at once).
        let next = match mailbox.try_recv() {
            Some(cmd) => {
                in_a_row += 1;
                if in_a_row >= MAILBOX_BATCH {
                    in_a_row = 0;
                    monoio::time::sleep(Duration::from_millis(1)).await;
                }
                Some(cmd)
            }
            None => {
                in_a_row = 0;
                mailbox.recv().await
            }
        };
        match next {
            Some(Command::StopAccepting) => ctx.stopping.raise(),
            Some(Command::Targets(t)) => *ctx.targets.borrow_mut() = t.iter().copied().collect(),
            Some(Command::Mode(cmd)) => worker.on_command(ctx, cmd),
            Some(Command::CloseAll) | None => return,
        }
    }
}
