//! UDP over the tunnel, both roles, with NodePass v1.14.0's framing: none. Each datagram
//! is one raw write to the pool connection and each read from it is taken as one datagram
//! (§3.A.5). A session per user address; it ends after `NP_UDP_READ_TIMEOUT` idle, or
//! when either side closes, and its pool connection is never reused.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBuf;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::udp::UdpSocket;

use super::pool_io::{PoolRead, PoolWrite};
use super::session::session_signal;
use super::TunnelCtx;
use crate::bus::Event;
use crate::dataplane::forward::Gauge;
use crate::dataplane::worker::WorkerCtx;
use crate::proto::{Action, PoolId};
use crate::runtime::ActiveDriver;
use crate::stats::WorkerStats;

struct UserSession {
    writer: RefCell<Option<PoolWrite>>,
    last_active: Rc<Cell<Instant>>,
    fd: RawFd,
}

type Sessions = Rc<RefCell<HashMap<SocketAddr, Rc<UserSession>>>>;

/// Shut `fds` down once nothing moved for `timeout` (or the worker closes): the pumps'
/// reads then end on their own, so no read is ever dropped in flight.
async fn watchdog(last: Rc<Cell<Instant>>, timeout: Duration, fds: [RawFd; 2], ctx: Rc<WorkerCtx>) {
    loop {
        let idle_for = last.get().elapsed();
        if idle_for >= timeout {
            break;
        }
        monoio::select! {
            _ = monoio::time::sleep(timeout - idle_for) => {}
            _ = ctx.closing.wait() => break,
        }
    }
    for fd in &fds {
        crate::net::shutdown_both(&crate::sys::borrow_raw_fd(fd));
    }
}

/// Serve datagrams arriving on this worker's user UDP socket.
pub async fn serve_users(listener: UdpSocket, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    let listener = Rc::new(listener);
    let sessions: Sessions = Rc::default();
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = monoio::select! {
            r = listener.recv_from(buf) => r,
            _ = ctx.stopping.wait() => break,
        };
        buf = b;
        let Ok((n, from)) = res else { continue };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        WorkerStats::add(&ctx.stats.udp_rx, n);
        let existing = sessions.borrow().get(&from).cloned();
        let session = match existing {
            Some(s) => s,
            None => match open_user_session(from, &ctx, &t, &listener, &sessions).await {
                Some(s) => s,
                None => continue,
            },
        };
        session.last_active.set(Instant::now());
        let writer = session.writer.borrow_mut().take();
        let Some(mut w) = writer else { continue };
        let (res, slice) = w.write_all(buf.slice(0..n)).await;
        buf = slice.into_inner();
        match res {
            Ok(_) => *session.writer.borrow_mut() = Some(w),
            Err(e) => {
                log::debug!("udp {from}: pool write failed: {e}");
                crate::net::shutdown_both(&crate::sys::borrow_raw_fd(&session.fd));
            }
        }
    }
}

async fn open_user_session(
    from: SocketAddr,
    ctx: &Rc<WorkerCtx>,
    t: &Rc<TunnelCtx>,
    listener: &Rc<UdpSocket>,
    sessions: &Sessions,
) -> Option<Rc<UserSession>> {
    let Some(slot) = ctx.spec.slots.try_acquire() else {
        log::warn!("slot limit reached: udp datagram from {from} dropped");
        return None;
    };
    let Some(pooled) = t.shard.wait_any(t.spec.pool_get_timeout).await else {
        log::warn!("request timeout: no idle pool connection for udp {from}");
        return None;
    };
    let remote = from.to_string();
    let line = session_signal(Action::Udp, &remote, pooled.id, &t.spec.key);
    let fd = pooled.fd;
    let (r, w) = pooled.conn.into_split();
    let session = Rc::new(UserSession {
        writer: RefCell::new(Some(w)),
        last_active: Rc::new(Cell::new(Instant::now())),
        fd,
    });
    sessions.borrow_mut().insert(from, Rc::clone(&session));
    t.spec.shared.send_signal(line);
    let ctx2 = Rc::clone(ctx);
    let listener = Rc::clone(listener);
    let sessions = Rc::clone(sessions);
    let session2 = Rc::clone(&session);
    monoio::spawn(async move {
        let _slot = slot;
        let _entry = ctx2.sessions.register([fd, fd]);
        let _live = Gauge::up(&ctx2.stats.udp_sessions);
        let dog = watchdog(
            Rc::clone(&session2.last_active),
            ctx2.spec.udp_read_timeout,
            [fd, fd],
            Rc::clone(&ctx2),
        );
        let pump = pool_to_user(r, &listener, from, &session2.last_active, &ctx2);
        monoio::join!(dog, pump);
        let mut map = sessions.borrow_mut();
        if map.get(&from).is_some_and(|s| Rc::ptr_eq(s, &session2)) {
            map.remove(&from);
        }
    });
    Some(session)
}

async fn pool_to_user(
    mut r: PoolRead,
    listener: &UdpSocket,
    to: SocketAddr,
    last: &Cell<Instant>,
    ctx: &WorkerCtx,
) {
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = r.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        last.set(Instant::now());
        let (res, slice) = listener.send_to(buf.slice(0..n), to).await;
        buf = slice.into_inner();
        if let Ok(sent) = res {
            WorkerStats::add(&ctx.stats.udp_tx, sent);
        }
    }
    // Ends the watchdog (and with it the session) at once.
    last.set(Instant::now() - Duration::from_secs(86_400 * 365));
}

/// The `udp` signal for pool connection `id`: relay its datagrams to a target.
pub async fn serve_signal(id: PoolId, remote: String, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    let Some(pooled) = t.shard.wait_id(id, t.spec.pool_get_timeout).await else {
        log::warn!("request timeout: pool connection {id} for udp {remote} not found");
        t.spec.shared.report(Event::PoolMiss);
        return;
    };
    let Some(_slot) = ctx.spec.slots.try_acquire() else {
        log::warn!("slot limit reached: udp {remote} refused");
        return;
    };
    let socket = match target_socket(&ctx) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("udp {remote} dropped: {e}");
            return;
        }
    };
    let fds = [pooled.fd, socket.as_raw_fd()];
    let _entry = ctx.sessions.register(fds);
    let _live = Gauge::up(&ctx.stats.udp_sessions);
    let last = Rc::new(Cell::new(Instant::now()));
    let (r, w) = pooled.conn.into_split();
    let dog = watchdog(
        Rc::clone(&last),
        ctx.spec.udp_read_timeout,
        fds,
        Rc::clone(&ctx),
    );
    let pumps = async {
        let up = pool_to_target(r, &socket, &last, &ctx);
        let down = target_to_pool(w, &socket, &last, &ctx);
        monoio::join!(up, down);
    };
    monoio::join!(dog, pumps);
}

fn target_socket(ctx: &WorkerCtx) -> std::io::Result<UdpSocket> {
    let targets = ctx.targets.borrow().clone();
    let start = ctx.take_rotation();
    let target = (0..targets.len())
        .find_map(|i| targets[(start + i) % targets.len()])
        .ok_or_else(|| std::io::Error::other("no target address is resolved yet"))?;
    let source = ctx.spec.source.current();
    let std_socket = match crate::net::udp_socket_for(target, source) {
        Ok(s) => s,
        Err(e) if source.is_some() => {
            ctx.spec.source.give_up(&e);
            crate::net::udp_socket_for(target, None)?
        }
        Err(e) => return Err(e),
    };
    std_socket.set_nonblocking(ctx.driver == ActiveDriver::Legacy)?;
    UdpSocket::from_std(std_socket)
}

fn end_session(last: &Cell<Instant>) {
    last.set(Instant::now() - Duration::from_secs(86_400 * 365));
}

async fn pool_to_target(
    mut r: PoolRead,
    socket: &UdpSocket,
    last: &Cell<Instant>,
    ctx: &WorkerCtx,
) {
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = r.read(buf).await;
        buf = b;
        let n = match res {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        last.set(Instant::now());
        let (res, slice) = socket.send(buf.slice(0..n)).await;
        buf = slice.into_inner();
        if let Ok(sent) = res {
            WorkerStats::add(&ctx.stats.udp_tx, sent);
        }
    }
    end_session(last);
}

async fn target_to_pool(
    mut w: PoolWrite,
    socket: &UdpSocket,
    last: &Cell<Instant>,
    ctx: &WorkerCtx,
) {
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = socket.recv(buf).await;
        buf = b;
        let n = match res {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if last.get().elapsed() > ctx.spec.udp_read_timeout {
            break;
        }
        last.set(Instant::now());
        WorkerStats::add(&ctx.stats.udp_rx, n);
        let (res, slice) = w.write_all(buf.slice(0..n)).await;
        buf = slice.into_inner();
        if res.is_err() {
            break;
        }
    }
    end_session(last);
}
