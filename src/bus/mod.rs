//! The only types that cross threads: commands to a worker, events back, and the queue
//! that lets one thread wake another's runtime without ever blocking it.
//!
//! - [`queue`] (from [`crate::wake`]): the one cross-thread queue.
//! - [`Command`]: what every worker understands, whatever its mode, plus the mode's own
//!   command type (`Mode`): the worker host knows no mode.
//! - [`tunnel`]: the tunnel's commands, events and per-run shared state.
//! - [`route`]: which worker owns a pool connection, and which command a signal becomes.
//! - [`pending`]: a tunnel server's answered `auth1` handshakes that have not proved a
//!   control connection yet.

pub mod owners;
pub mod pending;
pub mod route;
pub mod tunnel;

use std::net::SocketAddr;
use std::sync::Arc;

pub use crate::wake::{queue, QueueRx, QueueTx, Rejected};
pub use tunnel::{Event, RunAuth, TunnelCommand, TunnelShared, SIGNAL_QUEUE_DEPTH};

/// Commands the control thread sends to one worker: the host's own, and `Mode(M)` for the
/// mode that runs on it (`Infallible` for a mode without commands).
#[derive(Debug)]
pub enum Command<M> {
    /// Stop accepting new connections and UDP sessions; live ones go on.
    StopAccepting,
    /// Close every live session now (the drain deadline passed, or the run ended).
    CloseAll,
    /// Fresh DNS results for the target list (same order as the configured targets;
    /// `None` = not resolvable yet).
    Targets(Arc<[Option<SocketAddr>]>),
    /// A command for the worker's mode.
    Mode(M),
}

/// Queue depth of one worker's mailbox: commands are rare (control, not data).
const MAILBOX_DEPTH: usize = 1024;

/// The control thread's end of a worker's mailbox.
pub type WorkerHandle<M> = QueueTx<Command<M>>;

/// The worker's end of its mailbox.
pub type Mailbox<M> = QueueRx<Command<M>>;

/// A connected pair of handle and mailbox (a [`queue`] of `MAILBOX_DEPTH` commands).
pub fn mailbox<M>() -> (WorkerHandle<M>, Mailbox<M>) {
    queue(MAILBOX_DEPTH)
}

/// Send a command to every worker (`make` builds one per worker). A full mailbox is
/// logged; a closed one (the worker has ended, e.g. while a run is torn down) is not.
pub fn post_all<M: std::fmt::Debug>(workers: &[WorkerHandle<M>], make: impl Fn() -> Command<M>) {
    for (i, w) in workers.iter().enumerate() {
        match w.try_post(make()) {
            Ok(()) => {}
            Err(Rejected::Full(cmd)) => {
                log::warn!("worker {i}: command queue full, {cmd:?} dropped")
            }
            Err(Rejected::Closed(cmd)) => log::debug!("worker {i} has ended: {cmd:?} dropped"),
        }
    }
}
