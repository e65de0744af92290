//! TCP forwarding on one worker: accept users, admit them (slot, `block=`), dial a target
//! (with its PROXY header), and relay until both sides are done.

use std::net::SocketAddr;
use std::rc::Rc;

use monoio::net::{TcpListener, TcpStream};

use crate::dataplane::accept::accept_until;
use crate::dataplane::admit::{dial_target, is_blocked, take_slot, tcp_meters, Gauge};
use crate::dataplane::host::WorkerCtx;
use crate::dataplane::relay::{Dialled, Relay};
use crate::net;
use crate::sys::SocketFd;

/// Accept users until the worker is told to stop.
pub async fn accept_loop(listener: TcpListener, ctx: Rc<WorkerCtx>) {
    accept_until(&listener, &ctx.stopping, "user", |stream, peer| {
        ctx.spawn(serve_user(stream, peer, Rc::clone(&ctx)));
    })
    .await;
    log::debug!("worker {}: stopped accepting TCP", ctx.index);
}

async fn serve_user(user: TcpStream, peer: SocketAddr, ctx: Rc<WorkerCtx>) {
    let spec = &ctx.spec;
    let Some(_slot) = take_slot(&ctx, &peer) else {
        return;
    };
    if is_blocked(&user, peer, &ctx).await {
        return;
    }
    let Some((target, target_addr)) = dial_target(&ctx, Some(peer), &peer).await else {
        return;
    };
    let _entry = ctx
        .sessions
        .register([SocketFd::of(&user).into(), SocketFd::of(&target).into()]);
    let _live = Gauge::up(&ctx.stats.tcp_sessions);
    // Go prints both lines at INFO for every session; dashboards show them.
    log::info!("Starting exchange: {peer} <-> {target_addr}");
    let (up, down) = tcp_meters(&ctx);
    let relay = Relay {
        kind: spec.relay,
        idle: spec.read_timeout,
        pipes: &ctx.pipes,
        copy_buf: spec.tcp_buf_size,
        driver: ctx.driver,
    };
    let result = relay.run((user, target), Dialled::Second, up, down).await;
    log::info!("Exchange complete: {}", net::exchange_result(&result));
}
