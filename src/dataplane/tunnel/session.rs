//! TCP sessions over the tunnel, both roles: the accepting side (a user connected here:
//! take an idle pool connection, send `tcp`, relay) and the signalled side (take the pool
//! connection the signal names, dial a target, relay). Pool connections are used once.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};

use super::pool::{PoolConn, Pooled};
use super::pool_io::{PoolRead, PoolWrite};
use super::waits::{pooled_for_signal, Named};
use super::TunnelCtx;
use crate::bus::{Command, TunnelCommand};
use crate::dataplane::accept::accept_until;
use crate::dataplane::admit::{dial_target, is_blocked, take_slot, tcp_meters, Gauge};
use crate::dataplane::end::End;
use crate::dataplane::host::WorkerCtx;
use crate::dataplane::relay::{copy_bidi, twin, CopyBuf, Dialled, Idle, Meter, Relay};
use crate::logging::peer;
use crate::net;
use crate::proto::{encode_line, Action, PoolId, Signal};
use crate::runtime;
use crate::sys::{OwnsFd, SocketFd};

/// Accept users on this worker's target listener until told to stop.
pub async fn accept_users(listener: TcpListener, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    accept_until(&listener, &ctx.stopping, "user", |stream, peer| {
        ctx.spawn(serve_user(stream, peer, Rc::clone(&ctx), Rc::clone(&t)));
    })
    .await;
}

/// A signal line for a session.
pub(super) fn session_signal(action: Action, remote: &str, id: PoolId, key: &str) -> Vec<u8> {
    let mut sig = Signal::new(action);
    sig.remote = Some(remote.to_owned());
    sig.id = Some(id.to_hex());
    encode_line(&sig, key)
}

/// A worker with an empty shard passes a new user to the worker with the most idle pool
/// connections (the fd crosses threads; nothing has been read from it yet).
fn hand_off(user: &TcpStream, peer: SocketAddr, ctx: &WorkerCtx, t: &TunnelCtx) -> bool {
    if t.shard.len() > 0 {
        return false;
    }
    let shared = &t.spec.shared;
    let idle = |i: usize| shared.idle[i].load(std::sync::atomic::Ordering::Relaxed);
    let Some(best) = (0..shared.idle.len())
        .filter(|i| *i != ctx.index)
        .max_by_key(|i| idle(*i))
        .filter(|i| idle(*i) > 0)
    else {
        return false;
    };
    let Some(handle) = shared.workers.get().and_then(|w| w.get(best)) else {
        return false;
    };
    let Ok(fd) = user.fd().try_clone_to_owned() else {
        return false;
    };
    handle
        .post(Command::Mode(TunnelCommand::AdoptUser { fd, peer }))
        .is_ok()
}

/// Take an idle pool connection for `user`: from this worker's shard, or — while this
/// shard stays empty — by handing the user to a worker whose shard has one (new pool
/// connections land on whichever worker the kernel picks). `None` after
/// `NP_POOL_GET_TIMEOUT`, or when the user was handed off.
async fn wait_for_pooled(
    user: &TcpStream,
    peer: SocketAddr,
    ctx: &WorkerCtx,
    t: &TunnelCtx,
) -> Option<Pooled> {
    let deadline = std::time::Instant::now() + t.spec.pool_get_timeout;
    loop {
        if let Some(p) = t.shard.take_any() {
            return Some(p);
        }
        if hand_off(user, peer, ctx, t) {
            log::debug!("user {peer} handed to another worker while waiting for the pool");
            return None;
        }
        if std::time::Instant::now() >= deadline {
            log::warn!("request timeout: no idle pool connection for {peer}");
            return None;
        }
        t.shard.wake_refill();
        monoio::time::sleep(super::pool::TAKE_POLL).await;
    }
}

async fn serve_user(user: TcpStream, peer: SocketAddr, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    if hand_off(&user, peer, &ctx, &t) {
        log::debug!("user {peer} handed to another worker (empty shard)");
        return;
    }
    serve_adopted(user, peer, ctx, t).await;
}

/// Serve a user on this worker, whatever its shard holds.
pub async fn serve_adopted(
    user: TcpStream,
    peer: SocketAddr,
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
) {
    let Some(_slot) = take_slot(&ctx, &peer) else {
        return;
    };
    if is_blocked(&user, peer, &ctx).await {
        return;
    }
    let Some(pooled) = wait_for_pooled(&user, peer, &ctx, &t).await else {
        return;
    };
    let remote = peer.to_string();
    t.spec
        .shared
        .send_signal(session_signal(Action::Tcp, &remote, pooled.id, &t.spec.key));
    log::debug!("tunnel tcp {peer} via pool {}", pooled.id);
    // Go prints both lines at INFO for every session; dashboards show them.
    log::info!("Starting exchange: {peer} <-> {}", pooled.end.peer_text());
    relay_pooled(user, Dialled::Neither, pooled, &ctx).await;
}

/// The `tcp` signal for pool connection `id`: dial a target and relay.
pub async fn serve_signal(id: PoolId, remote: String, ctx: Rc<WorkerCtx>, t: Rc<TunnelCtx>) {
    // `remote` is the peer's text: escaped wherever it is printed.
    let who = peer(&remote);
    let Some(pooled) = pooled_for_signal(id, Named::Session(&who), &ctx, &t).await else {
        return;
    };
    let Some(_slot) = take_slot(&ctx, &who) else {
        return;
    };
    let user = remote.parse::<SocketAddr>().ok();
    let Some((target, target_addr)) = dial_target(&ctx, user, &who).await else {
        return;
    };
    log::debug!("tunnel tcp {who} -> {target_addr} via pool {id}");
    log::info!(
        "Starting exchange: {} <-> {target_addr}",
        pooled.end.peer_text()
    );
    relay_pooled(target, Dialled::First, pooled, &ctx).await;
}

/// Relay a user- or target-facing stream with a pool connection until both ends finish
/// (`dialled`: `First` when `local` is a target we dialled). The counters read as
/// NodePass's: RX = bytes from the local (user or target) socket.
async fn relay_pooled(local: TcpStream, dialled: Dialled, pooled: Pooled, ctx: &Rc<WorkerCtx>) {
    let spec = &ctx.spec;
    let ends = [End::Socket(SocketFd::of(&local)), pooled.end];
    let _entry = ctx.sessions.register(ends.clone());
    let _live = Gauge::up(&ctx.stats.tcp_sessions);
    let (up, down) = tcp_meters(ctx);
    let result = match pooled.conn {
        // A pool connection is in the driver's mode: accepted, or dialled and fitted.
        PoolConn::Plain(pool) => {
            let relay = Relay {
                kind: spec.relay,
                idle: spec.read_timeout,
                pipes: &ctx.pipes,
                copy_buf: spec.tcp_buf_size,
                driver: ctx.driver,
            };
            relay.run((local, pool), dialled, up, down).await
        }
        tls => {
            if dialled == Dialled::First {
                runtime::fit_dialled(ctx.driver, &local);
            }
            // TLS over TCP grows its buffer while streaming; a WebSocket message, a QUIC
            // or HTTP/2 write stays at most NP_TCP_DATA_BUF_SIZE, as Go's.
            let is_tls = matches!(tls, PoolConn::ServerTls(_) | PoolConn::ClientTls(_));
            let max = if is_tls {
                spec.tcp_buf_size.max(TLS_STREAM_BUF)
            } else {
                spec.tcp_buf_size
            };
            // The local socket is waited on for readiness, so a quiet session lends it no
            // buffer; so is a TLS pool connection, whose own buffer holds its socket read.
            let from_local = CopyBuf {
                initial: spec.tcp_buf_size,
                max,
                lend_when_readable: true,
            };
            let from_pool = CopyBuf {
                lend_when_readable: is_tls,
                ..from_local
            };
            let bufs = [from_local, from_pool];
            let (pr, pw) = tls.into_stream_split();
            // Boxed: the TLS stream state would otherwise size every session's task,
            // plain ones included (idle memory per connection).
            Box::pin(copy_with_pool(
                local,
                pr,
                pw,
                &ends,
                &up,
                &down,
                spec.read_timeout,
                bufs,
            ))
            .await
        }
    };
    log::info!("Exchange complete: {}", net::exchange_result(&result));
}

/// The largest copy buffer a streaming TLS session grows to: four full records per write.
const TLS_STREAM_BUF: usize = 64 * 1024;

#[allow(clippy::too_many_arguments)]
async fn copy_with_pool(
    local: TcpStream,
    mut pool_r: PoolRead,
    mut pool_w: PoolWrite,
    ends: &[End; 2],
    up: &Meter<'_>,
    down: &Meter<'_>,
    idle: Duration,
    bufs: [CopyBuf; 2],
) -> std::io::Result<()> {
    let idle = Idle::new(idle);
    // Two handles on the local socket (a `dup`) rather than monoio's split halves: the
    // reading one can wait for readiness without a buffer.
    let mut local_w = twin(&local)?;
    let mut local_r = local;
    copy_bidi(
        (&mut local_r, &mut local_w),
        (&mut pool_r, &mut pool_w),
        ends,
        (up, down),
        &idle,
        bufs,
    )
    .await
}
