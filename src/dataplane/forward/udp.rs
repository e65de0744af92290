//! UDP forwarding on one worker: a session per client address, each with its own
//! connected socket towards one target, expiring after `NP_UDP_READ_TIMEOUT` idle.
//!
//! Datagram boundaries are kept (one receive = one send). A datagram longer than
//! `NP_UDP_DATA_BUF_SIZE` is truncated to it, as in NodePass. Once the worker stops
//! accepting, a session ends after `admit::DRAIN_QUIET` without traffic.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use monoio::buf::IoBuf;
use monoio::net::udp::UdpSocket;

use crate::dataplane::admit::{
    udp_idle_limit, udp_meters, udp_next_stage, udp_target_socket, Gauge,
};
use crate::dataplane::host::WorkerCtx;
use crate::limit::SlotGuard;
use crate::net::SocketExt;
use crate::sys::SocketFd;

struct Session {
    socket: UdpSocket,
    last_active: Cell<Instant>,
    _slot: SlotGuard,
}

type SessionMap = Rc<RefCell<HashMap<SocketAddr, Rc<Session>>>>;

/// Serve datagrams arriving on this worker's UDP socket until the worker stops.
pub async fn serve(listener: UdpSocket, ctx: Rc<WorkerCtx>) {
    let listener = Rc::new(listener);
    let sessions: SessionMap = Rc::default();
    let (rx, _) = udp_meters(&ctx);
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = monoio::select! {
            r = listener.recv_from(buf) => r,
            _ = ctx.stopping.wait() => break,
        };
        buf = b;
        let (n, from) = match res {
            Ok(x) => x,
            Err(e) => {
                log::debug!("udp receive: {e}");
                continue;
            }
        };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        rx.account(n).await;
        let existing = sessions.borrow().get(&from).cloned();
        let session = match existing {
            Some(s) => s,
            None => match open_session(from, &ctx, &listener, &sessions) {
                Ok(s) => s,
                Err(e) => {
                    log::warn!("udp datagram from {from} dropped: {e}");
                    continue;
                }
            },
        };
        session.last_active.set(Instant::now());
        let (res, slice) = session.socket.send(buf.slice(0..n)).await;
        buf = slice.into_inner();
        if let Err(e) = res {
            log::debug!("udp send for {from}: {e}");
        }
    }
    log::debug!("worker {}: stopped accepting UDP", ctx.index);
}

fn open_session(
    from: SocketAddr,
    ctx: &Rc<WorkerCtx>,
    listener: &Rc<UdpSocket>,
    sessions: &SessionMap,
) -> io::Result<Rc<Session>> {
    let slot = ctx
        .spec
        .slots
        .try_acquire()
        .ok_or_else(|| io::Error::new(io::ErrorKind::WouldBlock, "slot limit reached"))?;
    let (socket, target) = udp_target_socket(ctx)?;
    let session = Rc::new(Session {
        socket,
        last_active: Cell::new(Instant::now()),
        _slot: slot,
    });
    sessions.borrow_mut().insert(from, Rc::clone(&session));
    log::debug!("udp session {from} -> {target}");
    ctx.spawn(pump_replies(
        Rc::clone(&session),
        from,
        Rc::clone(listener),
        Rc::clone(sessions),
        Rc::clone(ctx),
    ));
    Ok(session)
}

/// Carry the target's replies back to the client until the session idles out.
async fn pump_replies(
    session: Rc<Session>,
    client: SocketAddr,
    listener: Rc<UdpSocket>,
    sessions: SessionMap,
    ctx: Rc<WorkerCtx>,
) {
    let fd = SocketFd::of(&session.socket);
    let entry = ctx.sessions.register([fd.into(), fd.into()]);
    let live = Gauge::up(&ctx.stats.udp_sessions);
    loop {
        let limit = udp_idle_limit(&ctx);
        let idle_for = session.last_active.get().elapsed();
        if idle_for >= limit || ctx.closing.is_raised() {
            break;
        }
        // A readiness wait consumes nothing, so timing it out loses no datagram.
        let ready = monoio::select! {
            r = monoio::time::timeout(limit - idle_for, session.socket.readable(false)) => r,
            // The limit shortens (stopping) or the session ends (closing): look again.
            _ = udp_next_stage(&ctx).wait() => continue,
        };
        match ready {
            Err(_) => continue,
            Ok(Err(e)) => {
                log::debug!("udp session {client}: {e}");
                break;
            }
            Ok(Ok(())) => {}
        }
        if !relay_ready(&session, client, &listener, &ctx).await {
            break;
        }
    }
    let mut map = sessions.borrow_mut();
    if map.get(&client).is_some_and(|s| Rc::ptr_eq(s, &session)) {
        map.remove(&client);
    }
    drop(map);
    drop(entry);
    drop(live);
    log::debug!("udp session {client} closed");
}

/// Send every datagram waiting on the session's socket to the client; false once the
/// session is over (ICMP error, shutdown). The buffer is the worker's only while datagrams
/// flow, so an idle session holds none.
async fn relay_ready(
    session: &Session,
    client: SocketAddr,
    listener: &UdpSocket,
    ctx: &WorkerCtx,
) -> bool {
    let (_, tx) = udp_meters(ctx);
    let mut buf = take_buffer(ctx.spec.udp_buf_size.max(1));
    let alive = loop {
        let n = match session.socket.recv_now(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // ECONNREFUSED from an ICMP error, or a shutdown: the session is over.
                log::debug!("udp session {client}: {e}");
                break false;
            }
        };
        session.last_active.set(Instant::now());
        tx.pace(n).await;
        let (res, slice) = listener.send_to(buf.slice(0..n), client).await;
        buf = slice.into_inner();
        match res {
            Ok(sent) => tx.count(sent),
            Err(e) => log::debug!("udp reply to {client}: {e}"),
        }
    };
    give_buffer(buf);
    alive
}

/// Free reply buffers a worker keeps (more are allocated at a peak, then freed).
const SPARE_BUFFERS: usize = 64;

thread_local! {
    /// This worker thread's spare reply buffers.
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

fn take_buffer(len: usize) -> Vec<u8> {
    SPARE
        .with(|s| s.borrow_mut().pop())
        .filter(|b| b.len() == len)
        .unwrap_or_else(|| vec![0u8; len])
}

fn give_buffer(buf: Vec<u8>) {
    SPARE.with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < SPARE_BUFFERS {
            spare.push(buf);
        }
    });
}
