//! Single-end forwarding (client `mode=1`): each worker accepts users on its own
//! SO_REUSEPORT listener and UDP socket and forwards them to the targets. The mode has no
//! commands of its own; the worker host handles stop, DNS refresh and close.

mod tcp;
mod udp;

use std::convert::Infallible;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use super::host::{spawn_workers, DataPlane, ModeWorker, WorkerCtx, WorkerSockets};
use super::spec::SessionSpec;
use crate::runtime::ActiveDriver;

/// A forwarding worker: everything it does runs in the tasks `start` spawned.
struct Forwarder;

impl ModeWorker for Forwarder {
    type Command = Infallible;

    fn on_command(&self, _: &Rc<WorkerCtx>, cmd: Infallible) {
        match cmd {}
    }
}

/// Start one forwarding worker per entry of `sockets`, pinned to cores in order.
pub fn start_forwarder(
    spec: Arc<SessionSpec>,
    sockets: Vec<WorkerSockets>,
    driver: ActiveDriver,
) -> io::Result<DataPlane<Infallible>> {
    let stats = (0..sockets.len()).map(|_| Arc::default()).collect();
    spawn_workers(spec, sockets, stats, driver, start)
}

fn start(ctx: &Rc<WorkerCtx>, socks: WorkerSockets) -> io::Result<Forwarder> {
    if let Some(l) = socks.tcp {
        let listener = ctx.adopt_listener(l)?;
        ctx.spawn(tcp::accept_loop(listener, Rc::clone(ctx)));
    }
    if let Some(u) = socks.udp {
        let socket = ctx.adopt_udp(u)?;
        ctx.spawn(udp::serve(socket, Rc::clone(ctx)));
    }
    Ok(Forwarder)
}
