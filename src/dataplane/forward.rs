//! TCP forwarding on one worker: accept users, admit them (slot, `block=`), dial a target,
//! send the PROXY header if asked, and relay until both sides are done.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use monoio::net::{TcpListener, TcpStream};

use super::accept::accept_until;
use super::dial::{dial_rotating, send_all};
use super::relay::{Meter, Relay, RelayKind};
use super::worker::WorkerCtx;
use crate::config::{BlockSet, ProxyProtocol};
use crate::limit::{classify_first_bytes, Verdict};
use crate::runtime::ActiveDriver;
use crate::{net, proxy_proto, sys};

/// How long `block=` waits for a user's first bytes before letting the connection through
/// (protocols where the server speaks first send nothing).
const SNIFF_WAIT: Duration = Duration::from_millis(1000);

/// Accept users until the worker is told to stop.
pub async fn accept_loop(listener: TcpListener, ctx: Rc<WorkerCtx>) {
    accept_until(&listener, &ctx.stopping, "user", |stream, peer| {
        ctx.spawn(serve_user(stream, peer, Rc::clone(&ctx)));
    })
    .await;
    log::debug!("worker {}: stopped accepting TCP", ctx.index);
}

/// Counts a live session in a gauge for as long as it exists.
pub(super) struct Gauge<'a>(&'a AtomicI64);

impl<'a> Gauge<'a> {
    pub(super) fn up(g: &'a AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve_user(user: TcpStream, peer: SocketAddr, ctx: Rc<WorkerCtx>) {
    let spec = &ctx.spec;
    let Some(_slot) = spec.slots.try_acquire() else {
        log::warn!("slot limit reached: refusing {peer}");
        return;
    };
    if !spec.block.is_empty() {
        if let Some(proto) = sniff_blocked(&user, spec.block).await {
            log::warn!("blocked {proto} connection from {peer}");
            return;
        }
    }
    let targets = ctx.targets.borrow().clone();
    let (target, target_addr) = match dial_rotating(
        &targets,
        ctx.take_rotation(),
        &spec.source,
        spec.tcp_dial_timeout,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => {
            log::warn!("connection from {peer} dropped: {e}");
            return;
        }
    };
    let _ = net::tune_stream(&sys::borrow_fd(&target), spec.keepalive);
    if let Err(e) = send_proxy_header(&target, spec.proxy, peer, target_addr).await {
        log::warn!("PROXY header to {target_addr} failed: {e}");
        return;
    }
    if spec.relay != RelayKind::Splice && ctx.driver == ActiveDriver::Uring {
        // monoio's io_uring reads and writes expect blocking sockets.
        let _ = net::set_nonblocking(&sys::borrow_fd(&target), false);
        let _ = net::set_nonblocking(&sys::borrow_fd(&user), false);
    }
    let _entry = ctx
        .sessions
        .register([user.as_raw_fd(), target.as_raw_fd()]);
    let _live = Gauge::up(&ctx.stats.tcp_sessions);
    // Go prints both lines at INFO for every session; dashboards show them.
    log::info!("Starting exchange: {peer} <-> {target_addr}");
    let up = Meter {
        counter: &ctx.stats.tcp_rx,
        limiter: spec.rate_rx.as_ref(),
    };
    let down = Meter {
        counter: &ctx.stats.tcp_tx,
        limiter: spec.rate_tx.as_ref(),
    };
    let relay = Relay {
        kind: spec.relay,
        idle: spec.read_timeout,
        pipes: &ctx.pipes,
        copy_buf: spec.tcp_buf_size,
    };
    let result = relay.run(user, target, up, down).await;
    log::info!("Exchange complete: {}", net::exchange_result(&result));
}

pub(super) async fn send_proxy_header(
    target: &TcpStream,
    proxy: ProxyProtocol,
    user: SocketAddr,
    target_addr: SocketAddr,
) -> io::Result<()> {
    let header = match proxy {
        ProxyProtocol::Off => return Ok(()),
        ProxyProtocol::V1 => proxy_proto::v1_header(user, target_addr),
        ProxyProtocol::V2 => proxy_proto::v2_header(user, target_addr, proxy_proto::Transport::Tcp),
    };
    send_all(target, &header).await
}

/// Peek at the user's first bytes (never consuming them) and name a blocked protocol.
pub(super) async fn sniff_blocked(user: &TcpStream, blocked: BlockSet) -> Option<&'static str> {
    let deadline = Instant::now() + SNIFF_WAIT;
    let mut buf = [0u8; 8];
    loop {
        let n = match sys::peek(sys::borrow_fd(user), &mut buf) {
            Ok(0) => return None,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
            Err(_) => return None,
        };
        match classify_first_bytes(&buf[..n], blocked) {
            Verdict::Allow => return None,
            Verdict::Block(p) => return Some(p),
            Verdict::NeedMore => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        if n == 0 {
            if monoio::time::timeout(left, user.readable(false))
                .await
                .is_err()
            {
                return None;
            }
        } else {
            // Some bytes are there but not enough to decide: let more arrive.
            monoio::time::sleep(left.min(Duration::from_millis(10))).await;
        }
    }
}
