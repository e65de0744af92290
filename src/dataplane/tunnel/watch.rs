//! Idle pool connections leave the pool the moment they die.
//!
//! Without this a pool connection that the peer closed (a restarted client, a dropped
//! link, a port scanner from the client's IP) stayed "idle" until a user took it and
//! failed, and the two ends' pools drifted apart for good: the server full of dead entries
//! refused the client's new connections, the client's entries were closed by the server.
//!
//! Each worker registers its idle connections in an epoll instance of its own and waits
//! for that one descriptor on its runtime (one pending poll per worker, not one per
//! connection); taking a connection unregisters it.
//! - A reset or hang-up removes the connection at once.
//! - A FIN retires it at once (no user gets it any more) and removes it if no signal has
//!   named it within `NP_POOL_GET_TIMEOUT`: the peer may have started a session on it and
//!   half-closed before our end read the signal, or sent `verify` for it and closed it (Go
//!   does), so a signal may still come for it.
//! - On a server where users arrive (flow `-`), any byte on an idle connection removes it:
//!   a real client (ours or Go's) never writes there before the server has signalled it,
//!   so those bytes come from someone else on the client's host (garbage, an HTTP probe, a
//!   slowloris) that must never be paired with a user. Elsewhere idle data is normal (the
//!   peer relays before our end has read the signal; TLS session tickets).

use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::pool::{watch_token, Shard, Which};
use super::strangers::stranger_seen;
use super::{TunnelCtx, TunnelSide};
use crate::dataplane::host::WorkerCtx;
use crate::proto::PoolId;
use crate::runtime::ActiveDriver;
use crate::sys::Epoll;

/// Reset or hang-up: reported whatever the interest.
const BROKEN: u32 = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
/// The peer sent FIN.
const PEER_FIN: u32 = libc::EPOLLRDHUP as u32;
/// Bytes arrived.
const DATA: u32 = libc::EPOLLIN as u32;

/// Start watching this worker's idle pool connections; the task ends with the worker.
pub fn start(ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) {
    let accepting = t.accepting;
    let server = matches!(t.spec.side, TunnelSide::Server { .. });
    let interest = match (accepting, server) {
        (true, true) => BROKEN | PEER_FIN | DATA,
        _ => BROKEN | PEER_FIN,
    };
    let (epoll, ready) = match open(ctx.driver) {
        Ok(x) => x,
        Err(e) => {
            // The pool still works; dead entries are then found only when used.
            log::warn!(
                "worker {}: cannot watch idle pool connections: {e}",
                ctx.index
            );
            return;
        }
    };
    t.shard.set_watch(epoll, interest);
    if accepting && server {
        t.shard.probe_on_take();
    }
    let watch = Watch {
        hostile_data: accepting && server,
        grace: t.spec.pool_get_timeout,
        t: Rc::clone(t),
    };
    ctx.spawn(watch.run(ready));
}

/// The epoll instance and a second descriptor of it that the runtime can wait on.
fn open(driver: ActiveDriver) -> std::io::Result<(Epoll, monoio::net::TcpStream)> {
    let epoll = Epoll::new()?;
    // monoio waits for readiness only on its socket types; an epoll descriptor is
    // pollable like a socket, and only `readable` is ever asked of this one.
    let std_fd = std::net::TcpStream::from(epoll.try_clone_fd()?);
    let ready = crate::runtime::adopt_tcp_stream(driver, std_fd)?;
    Ok((epoll, ready))
}

struct Watch {
    /// A server's accepting end: bytes on an idle connection are not the client's.
    hostile_data: bool,
    grace: Duration,
    t: Rc<TunnelCtx>,
}

/// How often retired connections are looked at (they live `NP_POOL_GET_TIMEOUT`).
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

impl Watch {
    async fn run(mut self, ready: monoio::net::TcpStream) {
        let mut events = Vec::with_capacity(64);
        loop {
            let readable = monoio::select! {
                r = ready.readable(false) => Some(r),
                _ = monoio::time::sleep(EXPIRE_EVERY) => None,
            };
            match readable {
                None => {
                    let closed = self.t.shard.expire_retired(Instant::now());
                    if closed > 0 {
                        log::debug!("{closed} retired idle pool connections closed");
                    }
                }
                Some(Err(e)) => {
                    log::warn!("idle pool watch stopped: {e}");
                    return;
                }
                Some(Ok(())) => {
                    events.clear();
                    if let Err(e) = self.t.shard.ready_now(&mut events) {
                        log::warn!("idle pool watch stopped: {e}");
                        return;
                    }
                    for &(token, bits) in &events {
                        self.on_event(token, bits);
                    }
                }
            }
        }
    }

    fn on_event(&mut self, token: u64, bits: u32) {
        let id = PoolId(((token >> 32) as u32).to_be_bytes());
        let fd = token as u32 as RawFd;
        debug_assert_eq!(watch_token(id, fd), token);
        let shard: &Shard = &self.t.shard;
        if bits & BROKEN != 0 {
            if shard.evict(id, &Which::Fd(fd)).is_some() {
                log::debug!("idle pool connection {id} reset by the peer: removed");
            }
        } else if bits & PEER_FIN != 0 {
            // EOF also makes it readable: this is a close, not bytes. No user gets it now;
            // a signal naming it may still be on the way (a session the peer started and
            // half-closed, or its `verify`): decide later.
            shard.retire(id, Which::Fd(fd), Instant::now() + self.grace);
        } else if self.hostile_data && bits & DATA != 0 && shard.evict(id, &Which::Fd(fd)).is_some()
        {
            stranger_seen();
            let from = self
                .t
                .spec
                .shared
                .client_ip
                .get()
                .map_or_else(String::new, |ip| format!(" from {ip}"));
            log::warn!(
                "idle pool connection {id}{from} sent bytes before it was used: not a \
                 tunnel client, closed"
            );
        }
    }
}
