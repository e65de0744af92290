//! UDP users on the accepting side: a flow per client address over one pool connection.
//! A new flow never makes the receive loop wait: while its pool connection is being found
//! its first datagrams wait in the session (bounded), and a worker whose shard is empty
//! hands the flow to a worker that has idle connections (`TunnelCommand::AdoptUdp`), then
//! forwards that client's later datagrams there until `NP_UDP_READ_TIMEOUT` idle. An
//! adopter whose own shard is empty gives a waiting flow back to its origin, which places
//! it anew (new connections land wherever the kernel puts them).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use monoio::buf::IoBuf;
use monoio::net::udp::UdpSocket;

use super::super::pool::{Pooled, TAKE_POLL};
use super::super::session::session_signal;
use super::super::TunnelCtx;
use super::frame::{DatagramReader, DatagramWriter};
use super::session::{close, enqueue, give_back, send_now, UserSession};
use super::{end_session, watchdog, Liveness};
use crate::bus::{Command, TunnelCommand, WorkerHandle};
use crate::dataplane::admit::{take_slot, udp_meters, Gauge};
use crate::dataplane::host::WorkerCtx;
use crate::limit::SlotGuard;
use crate::proto::Action;
use crate::wake::LocalFlag;

/// This worker's user UDP socket and its flows.
pub struct UdpUsers {
    listener: UdpSocket,
    flows: RefCell<HashMap<SocketAddr, Flow>>,
}

#[derive(Clone)]
enum Flow {
    /// Carried by this worker (possibly still waiting for its pool connection).
    Local(Rc<UserSession>),
    /// Carried by another worker; this one forwards the client's datagrams there.
    Forwarded(Rc<Forward>),
}

struct Forward {
    worker: usize,
    last: Cell<Instant>,
}
impl UdpUsers {
    /// Wrap this worker's user UDP socket.
    pub fn new(listener: UdpSocket) -> UdpUsers {
        UdpUsers {
            listener,
            flows: RefCell::default(),
        }
    }

    fn get(&self, client: &SocketAddr) -> Option<Flow> {
        self.flows.borrow().get(client).cloned()
    }

    /// Forget `client` if its entry is still `session` (a newer flow may have replaced it).
    fn remove_session(&self, client: &SocketAddr, session: &Rc<UserSession>) {
        let mut flows = self.flows.borrow_mut();
        if matches!(flows.get(client), Some(Flow::Local(s)) if Rc::ptr_eq(s, session)) {
            flows.remove(client);
        }
    }
}

/// Serve datagrams arriving on this worker's user UDP socket.
pub async fn serve_users(users: Rc<UdpUsers>, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = monoio::select! {
            r = users.listener.recv_from(buf) => r,
            _ = ctx.stopping.wait() => break,
        };
        buf = b;
        let Ok((n, from)) = res else { continue };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        match users.get(&from) {
            Some(Flow::Local(s)) => buf = send_now(&s, buf, n, &ctx).await,
            Some(Flow::Forwarded(f)) if f.last.get().elapsed() < ctx.spec.udp_read_timeout => {
                f.last.set(Instant::now());
                forward(f.worker, from, buf[..n].to_vec(), ctx.index, &t);
            }
            _ => buf = open_flow(&users, from, buf, n, &ctx, &t).await,
        }
    }
}

/// A datagram for `client` handed over by worker `origin`: carry it on this worker. When
/// this worker is `origin`, the adopter gave the flow back: it stays here for good.
pub fn adopt(
    users: &Rc<UdpUsers>,
    client: SocketAddr,
    datagram: Vec<u8>,
    origin: usize,
    ctx: &Rc<WorkerCtx>,
    t: &Rc<TunnelCtx>,
) {
    if let Some(Flow::Local(s)) = users.get(&client) {
        s.last_active.set(Instant::now());
        enqueue(&s, datagram, ctx);
        return;
    }
    if ctx.stopping.is_raised() {
        return;
    }
    let Some(slot) = take_slot(ctx, &format_args!("udp datagram from {client}")) else {
        return;
    };
    // A returned flow replaces this worker's forwarding entry and waits as a new one.
    // A flow only moves when another worker is seen holding an idle connection, so every
    // move follows progress somewhere (no endless ping-pong over an empty pool).
    let waiting = if origin == ctx.index {
        Waiting::HandOff
    } else {
        Waiting::Adopted(origin)
    };
    let session = new_session(users, client);
    enqueue(&session, datagram, ctx);
    ctx.spawn(connect(
        Rc::clone(users),
        client,
        session,
        slot,
        waiting,
        Rc::clone(ctx),
        Rc::clone(t),
    ));
}

/// Where a pending session may look for a pool connection besides its own shard.
#[derive(Clone, Copy)]
enum Waiting {
    /// A new flow of this worker: hand it to any worker that has idle connections.
    HandOff,
    /// Adopted from this origin: give it back (to be placed anew) while this shard is
    /// empty and another worker has idle connections.
    Adopted(usize),
}

fn new_session(users: &UdpUsers, client: SocketAddr) -> Rc<UserSession> {
    let session = UserSession::new();
    let flow = Flow::Local(Rc::clone(&session));
    users.flows.borrow_mut().insert(client, flow);
    session
}

/// The first datagram of a flow: carry it here over an idle connection of this shard,
/// hand it to a worker with idle connections, or let it wait in a pending session.
async fn open_flow(
    users: &Rc<UdpUsers>,
    from: SocketAddr,
    buf: Vec<u8>,
    n: usize,
    ctx: &Rc<WorkerCtx>,
    t: &Rc<TunnelCtx>,
) -> Vec<u8> {
    let Some(slot) = take_slot(ctx, &format_args!("udp datagram from {from}")) else {
        return buf;
    };
    if let Some(pooled) = t.shard.take_any() {
        let session = new_session(users, from);
        start_relay(users, from, &session, pooled, slot, ctx, t);
        return send_now(&session, buf, n, ctx).await;
    }
    if let Some((worker, handle)) = adopter(ctx, t) {
        let datagram = buf[..n].to_vec();
        if handle
            .post(Command::Mode(TunnelCommand::AdoptUdp {
                client: from,
                datagram,
                origin: ctx.index,
            }))
            .is_ok()
        {
            log::debug!("udp {from} handed to worker {worker} (empty shard)");
            remember_forward(users, from, worker, ctx);
            return buf;
        }
    }
    let session = new_session(users, from);
    enqueue(&session, buf[..n].to_vec(), ctx);
    ctx.spawn(connect(
        Rc::clone(users),
        from,
        session,
        slot,
        Waiting::HandOff,
        Rc::clone(ctx),
        Rc::clone(t),
    ));
    buf
}

/// The worker with the most idle pool connections, when this shard has none and it has.
fn adopter<'a>(
    ctx: &WorkerCtx,
    t: &'a TunnelCtx,
) -> Option<(usize, &'a WorkerHandle<TunnelCommand>)> {
    if t.shard.len() > 0 {
        return None;
    }
    let shared = &t.spec.shared;
    let idle = |i: usize| shared.idle[i].load(std::sync::atomic::Ordering::Relaxed);
    let best = (0..shared.idle.len())
        .filter(|i| *i != ctx.index)
        .max_by_key(|i| idle(*i))
        .filter(|i| idle(*i) > 0)?;
    Some((best, shared.workers.get()?.get(best)?))
}

/// Post one datagram of `client` (whose datagrams reach worker `origin`) to `worker`.
fn forward(worker: usize, client: SocketAddr, datagram: Vec<u8>, origin: usize, t: &TunnelCtx) {
    let handle = t.spec.shared.workers.get().and_then(|w| w.get(worker));
    let cmd = Command::Mode(TunnelCommand::AdoptUdp {
        client,
        datagram,
        origin,
    });
    let posted = handle.is_some_and(|h| h.post(cmd).is_ok());
    if !posted {
        log::debug!("udp datagram from {client} dropped: worker {worker} is busy");
    }
}

/// Route `client` to `worker` until its datagrams stop for `NP_UDP_READ_TIMEOUT`.
fn remember_forward(users: &Rc<UdpUsers>, client: SocketAddr, worker: usize, ctx: &Rc<WorkerCtx>) {
    let entry = Rc::new(Forward {
        worker,
        last: Cell::new(Instant::now()),
    });
    let flow = Flow::Forwarded(Rc::clone(&entry));
    users.flows.borrow_mut().insert(client, flow);
    let users = Rc::clone(users);
    let tasks = Rc::clone(&ctx.tasks);
    let ctx = Rc::clone(ctx);
    tasks.spawn(async move {
        let timeout = ctx.spec.udp_read_timeout;
        loop {
            let idle_for = entry.last.get().elapsed();
            if idle_for >= timeout {
                break;
            }
            monoio::select! {
                _ = monoio::time::sleep(timeout - idle_for) => {}
                _ = ctx.closing.wait() => break,
            }
        }
        let mut flows = users.flows.borrow_mut();
        if matches!(flows.get(&client), Some(Flow::Forwarded(f)) if Rc::ptr_eq(f, &entry)) {
            flows.remove(&client);
        }
    });
}

/// Find a pool connection for a pending session: this shard first, then as `waiting`
/// allows, until `NP_POOL_GET_TIMEOUT`.
async fn connect(
    users: Rc<UdpUsers>,
    client: SocketAddr,
    session: Rc<UserSession>,
    slot: SlotGuard,
    waiting: Waiting,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
) {
    let found = wait_or_move(&users, client, &session, waiting, &ctx, &t).await;
    match found {
        Some(pooled) if !session.link.borrow().closed => {
            start_relay(&users, client, &session, pooled, slot, &ctx, &t);
        }
        Some(pooled) => {
            // The worker is closing: the connection goes back with the rest of the shard.
            let _ = t.shard.insert(pooled);
        }
        None if session.link.borrow().closed || ctx.closing.is_raised() => {}
        None => {
            log::warn!("request timeout: no idle pool connection for udp {client}");
            close(&session);
            users.remove_session(&client, &session);
        }
    }
}

async fn wait_or_move(
    users: &Rc<UdpUsers>,
    client: SocketAddr,
    session: &Rc<UserSession>,
    waiting: Waiting,
    ctx: &Rc<WorkerCtx>,
    t: &TunnelCtx,
) -> Option<Pooled> {
    let deadline = Instant::now() + t.spec.pool_get_timeout;
    loop {
        if let Some(p) = t.shard.take_any() {
            return Some(p);
        }
        if session.link.borrow().closed || ctx.closing.is_raised() {
            return None;
        }
        let move_to = adopter(ctx, t).map(|(worker, _)| match waiting {
            Waiting::HandOff => worker,
            Waiting::Adopted(origin) => origin,
        });
        if let Some(worker) = move_to {
            let queued = std::mem::take(&mut session.link.borrow_mut().queue);
            close(session);
            log::debug!("udp {client} moved to worker {worker} while waiting for the pool");
            let origin = match waiting {
                Waiting::Adopted(origin) => origin,
                Waiting::HandOff => ctx.index,
            };
            if origin == ctx.index {
                remember_forward(users, client, worker, ctx);
            } else {
                users.remove_session(&client, session);
            }
            for datagram in queued {
                forward(worker, client, datagram, origin, t);
            }
            return None;
        }
        if Instant::now() >= deadline {
            return None;
        }
        t.shard.wake_refill();
        monoio::time::sleep(TAKE_POLL).await;
    }
}

/// Send the `udp` signal for `pooled`, flush what the session queued, and relay replies
/// until the session ends.
fn start_relay(
    users: &Rc<UdpUsers>,
    client: SocketAddr,
    session: &Rc<UserSession>,
    pooled: Pooled,
    slot: SlotGuard,
    ctx: &Rc<WorkerCtx>,
    t: &Rc<TunnelCtx>,
) {
    let line = session_signal(Action::Udp, &client.to_string(), pooled.id, &t.spec.key);
    t.spec.shared.send_signal(line);
    log::debug!("tunnel udp {client} via pool {}", pooled.id);
    let end = pooled.end;
    let (r, w) = pooled.conn.into_split();
    let framed = t.spec.shared.udp_framed();
    let r = DatagramReader::new(r, framed, ctx.spec.udp_buf_size);
    session.link.borrow_mut().end = Some(end.clone());
    session.last_active.set(Instant::now());
    give_back(session, DatagramWriter::new(w, framed), ctx);
    let users = Rc::clone(users);
    let session = Rc::clone(session);
    let tasks = Rc::clone(&ctx.tasks);
    let ctx = Rc::clone(ctx);
    tasks.spawn(async move {
        let _slot = slot;
        let ends = [end.clone(), end];
        let _entry = ctx.sessions.register(ends.clone());
        let _live = Gauge::up(&ctx.stats.udp_sessions);
        let last = Rc::clone(&session.last_active);
        // The pump borrows the reader, so the pool connection stays open until the
        // watchdog (which may still shut it down) has ended too.
        let mut r = r;
        let ended = LocalFlag::default();
        let dog = watchdog(Rc::clone(&last), &ended, &ends, Rc::clone(&ctx));
        let pump = pool_to_user(&mut r, &users.listener, client, (&last, &ended), &ctx);
        monoio::join!(dog, pump);
        close(&session);
        users.remove_session(&client, &session);
    });
}
async fn pool_to_user(
    r: &mut DatagramReader,
    listener: &UdpSocket,
    to: SocketAddr,
    (last, ended): Liveness<'_>,
    ctx: &WorkerCtx,
) {
    let (_, tx) = udp_meters(ctx);
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = r.next(buf).await;
        buf = b;
        let Some(n) = res else { break };
        last.set(Instant::now());
        tx.pace(n).await;
        let (res, slice) = listener.send_to(buf.slice(0..n), to).await;
        buf = slice.into_inner();
        if let Ok(sent) = res {
            tx.count(sent);
        }
    }
    // Ends the watchdog (and with it the session) at once.
    end_session((last, ended));
}
