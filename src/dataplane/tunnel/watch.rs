//! Idle pool connections leave the pool the moment they die.
//!
//! Without this a pool connection that the peer closed (a restarted client, a dropped
//! link, a port scanner from the client's IP) stayed "idle" until a user took it and
//! failed, and the two ends' pools drifted apart for good: the server full of dead entries
//! refused the client's new connections, the client's entries were closed by the server.
//!
//! Each worker registers its idle connections in an epoll instance of its own and waits
//! for that one descriptor on its runtime (one pending poll per worker, not one per
//! connection); taking a connection unregisters it. What counts as dead:
//! - always: the peer closed or reset it (`EPOLLRDHUP`, `EPOLLHUP`, `EPOLLERR`);
//! - on the server of a flow `-` tunnel also any byte that arrives while it is idle: a
//!   real client (ours or Go's) never writes on a pool connection before the server has
//!   used it, so bytes there come from someone else on the client's host (garbage, an
//!   HTTP probe, a slowloris) and must never be paired with a user. Elsewhere idle data is
//!   normal (the peer relays before our side has read the signal; TLS session tickets).

use std::rc::Rc;

use super::pool::{watch_token, Shard};
use super::{TunnelCtx, TunnelSide};
use crate::dataplane::worker::WorkerCtx;
use crate::proto::{Flow, PoolId};
use crate::runtime::ActiveDriver;
use crate::sys::Epoll;

/// The peer closed or reset the connection.
const GONE: u32 = (libc::EPOLLRDHUP | libc::EPOLLHUP | libc::EPOLLERR) as u32;

/// Start watching this worker's idle pool connections; the task ends with the worker.
pub fn start(ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) {
    let data_is_hostile = matches!(
        &t.spec.side,
        TunnelSide::Server { reply, .. } if reply.flow == Flow::Minus
    );
    let interest = if data_is_hostile {
        libc::EPOLLIN as u32 | GONE
    } else {
        GONE
    };
    let (epoll, ready) = match open(ctx.driver) {
        Ok(x) => x,
        Err(e) => {
            // The pool still works; dead entries are then found only when used.
            log::warn!("worker {}: cannot watch idle pool connections: {e}", ctx.index);
            return;
        }
    };
    t.shard.set_watch(epoll, interest);
    ctx.spawn(run(ready, Rc::clone(t)));
}

/// The epoll instance and a second descriptor of it that the runtime can wait on.
fn open(driver: ActiveDriver) -> std::io::Result<(Epoll, monoio::net::TcpStream)> {
    let epoll = Epoll::new()?;
    // monoio waits for readiness only on its socket types; an epoll descriptor is
    // pollable like a socket, and only `readable` is ever asked of this one.
    let std_fd = std::net::TcpStream::from(epoll.try_clone_fd()?);
    std_fd.set_nonblocking(driver == ActiveDriver::Legacy)?;
    let ready = monoio::net::TcpStream::from_std(std_fd)?;
    Ok((epoll, ready))
}

async fn run(ready: monoio::net::TcpStream, t: Rc<TunnelCtx>) {
    let mut events = Vec::with_capacity(64);
    loop {
        if let Err(e) = ready.readable(false).await {
            log::warn!("idle pool watch stopped: {e}");
            return;
        }
        events.clear();
        if let Err(e) = t.shard.ready_now(&mut events) {
            log::warn!("idle pool watch stopped: {e}");
            return;
        }
        for &(token, bits) in &events {
            evict(&t.shard, token, bits, &t);
        }
    }
}

fn evict(shard: &Shard, token: u64, bits: u32, t: &TunnelCtx) {
    let id = PoolId(((token >> 32) as u32).to_be_bytes());
    let fd = token as u32 as i32;
    debug_assert_eq!(watch_token(id, fd), token);
    let Some(p) = shard.evict(id, fd) else {
        return;
    };
    if bits & GONE != 0 {
        log::debug!("idle pool connection {id} closed by the peer: removed from the pool");
    } else {
        let from = t
            .spec
            .shared
            .client_ip
            .get()
            .map_or_else(String::new, |ip| format!(" from {ip}"));
        log::warn!(
            "idle pool connection {id}{from} sent bytes before it was used: not a tunnel \
             client, closed"
        );
    }
    drop(p);
}
