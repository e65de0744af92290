//! The steps every user session takes, in every mode and role: a `slot=` place, the
//! `block=` sniff, a target dialled and tuned (with its PROXY header), a UDP socket
//! towards a target, the session gauges, the meters that count and pace its bytes, and
//! the idle rules of UDP sessions. Modes compose these; none owns them.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use monoio::net::udp::UdpSocket;
use monoio::net::TcpStream;

use super::dial::{dial_rotating, send_all};
use super::host::WorkerCtx;
use super::relay::Meter;
use crate::config::{BlockSet, ProxyProtocol};
use crate::limit::{classify_first_bytes, SlotGuard, Verdict};
use crate::net::{self, SocketExt};
use crate::wake::LocalFlag;
use crate::{proxy_proto, runtime};

/// How long `block=` waits for a user's first bytes before letting the connection through
/// (protocols where the server speaks first send nothing).
const SNIFF_WAIT: Duration = Duration::from_millis(1000);

/// After `StopAccepting`, a UDP session quiet for this long ends, so idle sessions do
/// not hold a graceful drain until `NP_SHUTDOWN_TIMEOUT` (a reply in flight still has
/// this long to arrive; a busy session lives on until the drain deadline).
pub(crate) const DRAIN_QUIET: Duration = Duration::from_millis(250);

/// Counts a live session in a gauge for as long as it exists.
pub(crate) struct Gauge<'a>(&'a AtomicI64);

impl<'a> Gauge<'a> {
    pub(crate) fn up(g: &'a AtomicI64) -> Self {
        g.fetch_add(1, Ordering::Relaxed);
        Gauge(g)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A `slot=` place for a session of `who` (logged when the limit is reached).
pub(crate) fn take_slot(ctx: &WorkerCtx, who: &dyn std::fmt::Display) -> Option<SlotGuard> {
    let slot = ctx.spec.slots.try_acquire();
    if slot.is_none() {
        log::warn!("slot limit reached: refusing {who}");
    }
    slot
}

/// `block=`: true (and logged) when the user's first bytes are a blocked protocol.
pub(crate) async fn is_blocked(user: &TcpStream, peer: SocketAddr, ctx: &WorkerCtx) -> bool {
    if ctx.spec.block.is_empty() {
        return false;
    }
    match sniff_blocked(user, ctx.spec.block).await {
        Some(proto) => {
            log::warn!("blocked {proto} connection from {peer}");
            true
        }
        None => false,
    }
}

/// Dial the next target in this worker's rotation for the session of `user` (`who` in
/// logs), tune the socket and send the PROXY header (for a known `user` address). `None`
/// after logging why.
pub(crate) async fn dial_target(
    ctx: &WorkerCtx,
    user: Option<SocketAddr>,
    who: &dyn std::fmt::Display,
) -> Option<(TcpStream, SocketAddr)> {
    let spec = &ctx.spec;
    let targets = ctx.targets.borrow().clone();
    let dialled = dial_rotating(
        &targets,
        ctx.take_rotation(),
        &spec.source,
        spec.tcp_dial_timeout,
    )
    .await;
    let (target, target_addr) = match dialled {
        Ok(t) => t,
        Err(e) => {
            log::warn!("connection from {who} dropped: {e}");
            return None;
        }
    };
    let _ = target.tune_stream(spec.keepalive);
    if let Some(user) = user {
        if let Err(e) = send_proxy_header(&target, spec.proxy, user, target_addr).await {
            log::warn!("PROXY header to {target_addr} failed: {e}");
            return None;
        }
    }
    Some((target, target_addr))
}

/// A UDP socket connected to the next resolved target in this worker's rotation, from the
/// `dial=` address while it works (Go's one-way fall-back otherwise).
pub(crate) fn udp_target_socket(ctx: &WorkerCtx) -> io::Result<(UdpSocket, SocketAddr)> {
    let targets = ctx.targets.borrow().clone();
    let start = ctx.take_rotation();
    let target = (0..targets.len())
        .find_map(|i| targets[(start + i) % targets.len()])
        .ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "no target address is resolved yet")
        })?;
    let source = ctx.spec.source.current();
    let std_socket = match net::udp_socket_for(target, source) {
        Ok(s) => s,
        Err(e) if source.is_some() => {
            ctx.spec.source.give_up(&e);
            net::udp_socket_for(target, None)?
        }
        Err(e) => return Err(e),
    };
    Ok((runtime::adopt_udp_socket(ctx.driver, std_socket)?, target))
}

/// The meters of a TCP session: `rx` counts (and paces) bytes read from the local socket
/// (user or target), `tx` bytes written to it — NodePass's RX and TX.
pub(crate) fn tcp_meters(ctx: &WorkerCtx) -> (Meter<'_>, Meter<'_>) {
    meters(ctx, &ctx.stats.tcp_rx, &ctx.stats.tcp_tx)
}

/// The meters of a UDP session, read the same way: `rx` for datagrams read from the local
/// socket (user or target), `tx` for datagrams written to it.
pub(crate) fn udp_meters(ctx: &WorkerCtx) -> (Meter<'_>, Meter<'_>) {
    meters(ctx, &ctx.stats.udp_rx, &ctx.stats.udp_tx)
}

/// `rx`/`tx` counters paced by the process-wide `rate=` limiters of each direction.
fn meters<'a>(ctx: &'a WorkerCtx, rx: &'a AtomicU64, tx: &'a AtomicU64) -> (Meter<'a>, Meter<'a>) {
    (
        Meter {
            counter: rx,
            limiter: ctx.spec.rate_rx.as_ref(),
        },
        Meter {
            counter: tx,
            limiter: ctx.spec.rate_tx.as_ref(),
        },
    )
}

/// How long a UDP session may stay idle now: `NP_UDP_READ_TIMEOUT`, or [`DRAIN_QUIET`]
/// once the worker stops accepting.
pub(crate) fn udp_idle_limit(ctx: &WorkerCtx) -> Duration {
    let timeout = ctx.spec.udp_read_timeout;
    if ctx.stopping.is_raised() {
        timeout.min(DRAIN_QUIET)
    } else {
        timeout
    }
}

/// The next flag a UDP session's idle wait must react to: `stopping` (its limit
/// shortens), then `closing` (it ends).
pub(crate) fn udp_next_stage(ctx: &WorkerCtx) -> &LocalFlag {
    if ctx.stopping.is_raised() {
        &ctx.closing
    } else {
        &ctx.stopping
    }
}

async fn send_proxy_header(
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
async fn sniff_blocked(user: &TcpStream, blocked: BlockSet) -> Option<&'static str> {
    let deadline = Instant::now() + SNIFF_WAIT;
    let mut buf = [0u8; 8];
    loop {
        let n = match user.peek_now(&mut buf) {
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
