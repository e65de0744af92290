//! The server's QUIC endpoint on one worker: the tunnel port's UDP socket (same port
//! number as the TCP tunnel port, SO_REUSEPORT: the kernel keeps a connection's 4-tuple
//! on one worker). As Go: no listener before a handshake (datagrams are ignored), a
//! connection from another IP than the handshake's client is closed with application
//! error 0 `unauthorized IP` once connected, and each bidirectional stream is a pool
//! entry: a full pool finishes it unread, otherwise one byte is read (not checked) and
//! the entry goes on as on the TCP pool (`inbound::pool_entry`: id, control, proof).
//! Unlike Go the entry is stored before its id is published.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use super::{config, Admit, Arrival, Ep, QuicStream};
use crate::crowd::Ticket;
use crate::dataplane::host::WorkerCtx;
use crate::dataplane::tunnel::pool::PoolConn;
use crate::dataplane::tunnel::{inbound, pending, TunnelCtx, TunnelSide};

/// Start this worker's QUIC endpoint on `socket`.
pub fn start(
    socket: std::net::UdpSocket,
    ctx: &Rc<WorkerCtx>,
    t: &Rc<TunnelCtx>,
) -> io::Result<Rc<Ep>> {
    let TunnelSide::Server { reply, tls } = &t.spec.side else {
        return Err(io::Error::other("QUIC server on a client"));
    };
    let tls = tls
        .as_ref()
        .ok_or_else(|| io::Error::other("QUIC pool without a TLS configuration"))?;
    let cfg = config::server(&tls.config, reply.max)?;
    let weak = Rc::downgrade(t);
    let admit = Box::new(move |ip| {
        let Some(t) = weak.upgrade() else {
            return Admit::Ignore;
        };
        match t.spec.shared.client_ip.get() {
            Some(client) if *client == ip => Admit::Accept,
            Some(_) => Admit::Stranger,
            None if pending::is_pending(&t, ip) => Admit::Accept,
            None => Admit::Ignore,
        }
    });
    let ep = Ep::start(socket, Some((cfg, admit)), ctx)?;
    super::spawn_sweeper(&ep, ctx, t);
    ctx.spawn(accept_loop(Rc::clone(&ep), Rc::clone(ctx), Rc::clone(t)));
    Ok(ep)
}

/// Whether `peer` may hold pool entries now.
fn authorized(peer: SocketAddr, t: &TunnelCtx) -> bool {
    match t.spec.shared.client_ip.get() {
        Some(ip) => *ip == peer.ip(),
        None => pending::is_pending(t, peer.ip()),
    }
}

async fn accept_loop(ep: Rc<Ep>, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    loop {
        let arrival = monoio::select! {
            a = ep.arrival() => a,
            _ = ctx.closing.wait() => return,
        };
        match arrival {
            Arrival::Connected(ch, peer) => {
                if authorized(peer, &t) {
                    log::debug!("QUIC pool connection from {peer}");
                } else {
                    t.warns
                        .warn(|| format!("QUIC connection from {peer} closed: unauthorized IP"));
                    ep.close(ch, "unauthorized IP");
                }
            }
            Arrival::Stream(ch, id) => {
                let Some(peer) = ep.remote(ch) else { continue };
                if !ep.usable(ch) || !authorized(peer, &t) {
                    continue;
                }
                let stream = match QuicStream::new(&ep, ch, id) {
                    Ok(s) => s,
                    Err(e) => {
                        log::debug!("QUIC stream from {peer}: {e}");
                        continue;
                    }
                };
                let (ticket, evicted) = t.crowd.admit_with(peer.ip(), t.client_ip_cap());
                let (ctx2, t2) = (Rc::clone(&ctx), Rc::clone(&t));
                ctx.spawn(async move {
                    evicted.guard(entry(stream, peer, ctx2, t2, ticket)).await;
                });
            }
        }
    }
}

/// One stream: Go's `0x00`, then the pool entry.
async fn entry(
    mut stream: QuicStream,
    peer: SocketAddr,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
    ticket: Ticket,
) {
    let TunnelSide::Server { reply, .. } = &t.spec.side else {
        return;
    };
    if t.spec.shared.idle_total() >= reply.max as usize {
        // Go: `Close()` unread (a FIN); dropping it does that.
        log::debug!("QUIC stream from {peer} refused: pool is full");
        return;
    }
    let first = monoio::time::timeout(t.spec.handshake_timeout, stream.recv_exact::<1>()).await;
    if !matches!(first, Ok(Ok(_))) {
        t.warns
            .warn(|| format!("QUIC stream from {peer} refused: no first byte"));
        return;
    }
    let end = stream.end();
    inbound::pool_entry(PoolConn::Quic(Box::new(stream)), end, peer, ctx, t, ticket).await;
}
