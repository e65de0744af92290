//! UDP over the tunnel, both roles. Against a Go peer with NodePass v1.14.0's framing:
//! none. Each datagram is one raw write to the pool connection and each read from it is
//! taken as one datagram (§3.A.5). Over TLS each datagram is one record and each read
//! returns one record (the patched monoio-rustls, `vendor/monoio-rustls/PATCH.md`), so
//! boundaries hold; over plain TCP only our `udp16` framing between two of our peers keeps
//! them (`frame.rs`). This file
//! is the signalled side (a connected target socket per `udp` signal); `users` is the
//! accepting side (a flow per user address). A session ends after `NP_UDP_READ_TIMEOUT`
//! idle (a short quiet time once the worker stops accepting), or when either side closes;
//! its pool connection is never reused.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::buf::IoBuf;
use monoio::net::udp::UdpSocket;

use super::waits::{pooled_for_signal, Named};
use super::TunnelCtx;
use crate::dataplane::admit::{
    take_slot, udp_idle_limit, udp_meters, udp_next_stage, udp_target_socket, Gauge,
};
use crate::dataplane::end::End;
use crate::dataplane::host::WorkerCtx;
use crate::dataplane::meter::Meter;
use crate::logging::peer;
use crate::proto::PoolId;
use crate::sys::SocketFd;
use crate::wake::LocalFlag;
use frame::{DatagramReader, DatagramWriter};

mod frame;
mod session;
mod users;
pub use users::{adopt, serve_users, UdpUsers};

/// Shut `ends` down once nothing moved for `NP_UDP_READ_TIMEOUT` (`DRAIN_QUIET` once
/// the worker stops accepting), a pump ended (`ended`, raised by [`end_session`]), or the
/// worker closes: the pumps' reads then end on their own, so no read is ever dropped in
/// flight.
async fn watchdog(last: Rc<Cell<Instant>>, ended: &LocalFlag, ends: &[End; 2], ctx: Rc<WorkerCtx>) {
    loop {
        let limit = udp_idle_limit(&ctx);
        let idle_for = last.get().elapsed();
        if idle_for >= limit || ended.is_raised() || ctx.closing.is_raised() {
            break;
        }
        monoio::select! {
            _ = monoio::time::sleep(limit - idle_for) => {}
            _ = udp_next_stage(&ctx).wait() => {}
            _ = ended.wait() => {}
        }
    }
    // The target socket's pump waits on this too: shutting a UDP socket down ends a
    // pending read on io_uring (a blocking recv sees the shutdown) but not on epoll (a
    // non-blocking recv keeps answering EAGAIN, and no readiness follows).
    ended.raise();
    for end in ends {
        end.shutdown_both();
    }
}

/// The `udp` signal for pool connection `id`: relay its datagrams to a target.
pub async fn serve_signal(id: PoolId, remote: String, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    // `remote` is the peer's text: escaped wherever it is printed.
    let who = peer(&remote);
    let Some(pooled) =
        pooled_for_signal(id, Named::Session(&format_args!("udp {who}")), &ctx, &t).await
    else {
        return;
    };
    let Some(_slot) = take_slot(&ctx, &format_args!("udp {who}")) else {
        return;
    };
    let socket = match udp_target_socket(&ctx) {
        Ok((s, _)) => s,
        Err(e) => {
            log::warn!("udp {who} dropped: {e}");
            return;
        }
    };
    let ends = [pooled.end, End::Socket(SocketFd::of(&socket))];
    let _entry = ctx.sessions.register(ends.clone());
    let _live = Gauge::up(&ctx.stats.udp_sessions);
    let last = Rc::new(Cell::new(Instant::now()));
    let (r, w) = pooled.conn.into_split();
    let framed = t.spec.shared.udp_framed();
    // The pumps borrow the halves, so the pool connection stays open until the watchdog
    // (which may still shut `ends` down) has ended too.
    let mut r = DatagramReader::new(r, framed, ctx.spec.udp_buf_size);
    let mut w = DatagramWriter::new(w, framed);
    let ended = LocalFlag::default();
    let dog = watchdog(Rc::clone(&last), &ended, &ends, Rc::clone(&ctx));
    let (rx, tx) = udp_meters(&ctx);
    let pumps = async {
        let up = pool_to_target(&mut r, &socket, (&last, &ended), &tx, &ctx);
        let down = target_to_pool(&mut w, &socket, (&last, &ended), &rx, &ctx);
        monoio::join!(up, down);
    };
    monoio::join!(dog, pumps);
}

/// A pump ended: the session ends at once (its watchdog shuts the sockets down, which
/// ends the other pump), not when it would next have looked at the idle time.
fn end_session((last, ended): Liveness<'_>) {
    last.set(Instant::now() - Duration::from_secs(86_400 * 365));
    ended.raise();
}

/// A UDP session's liveness as its pumps see it: when a datagram last moved, and the
/// flag that tells its watchdog a pump has ended.
type Liveness<'a> = (&'a Cell<Instant>, &'a LocalFlag);

/// Datagrams from the pool connection to the target: written to the local socket (TX).
async fn pool_to_target(
    r: &mut DatagramReader,
    socket: &UdpSocket,
    (last, ended): Liveness<'_>,
    tx: &Meter<'_>,
    ctx: &WorkerCtx,
) {
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        let (res, b) = r.next(buf).await;
        buf = b;
        let Some(n) = res else { break };
        last.set(Instant::now());
        tx.pace(n).await;
        let (res, slice) = socket.send(buf.slice(0..n)).await;
        buf = slice.into_inner();
        if let Ok(sent) = res {
            tx.count(sent);
        }
    }
    end_session((last, ended));
}

/// Datagrams from the target to the pool connection: read from the local socket (RX).
async fn target_to_pool(
    w: &mut DatagramWriter,
    socket: &UdpSocket,
    (last, ended): Liveness<'_>,
    rx: &Meter<'_>,
    ctx: &WorkerCtx,
) {
    let mut buf = vec![0u8; ctx.spec.udp_buf_size.max(1)];
    loop {
        // Dropping the receive when the session ends loses at most a datagram that came
        // after it ended (see the watchdog).
        let received = monoio::select! {
            r = socket.recv(buf) => r,
            _ = ended.wait() => break,
        };
        let (res, b) = received;
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
        rx.account(n).await;
        let (res, b) = w.send(buf, n).await;
        buf = b;
        if res.is_err() {
            break;
        }
    }
    end_session((last, ended));
}
