//! The dual-end tunnel's data plane: per-worker pool shards, the server's tunnel port
//! (handshake, then pool connections), the client's pool dialer, the control channel's
//! reader/writer, and user sessions in both directions over pool connections.
//!
//! Each pool connection is owned by the worker that accepted (server) or dialled (client)
//! it for its whole life. Signals reach the owner as [`Command`]s routed by the control
//! thread; the control channel (pool id `00000000`) is read and written on the worker
//! that owns it, which forwards decoded signals as [`Event::Signal`].

mod dialer;
mod inbound;
mod link;
mod pool;
mod pool_io;
mod session;
mod udp;
mod watch;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::{Command, Mailbox, TunnelShared};
use crate::proto::TunnelConfig;
use crate::runtime::ActiveDriver;
use crate::stats::WorkerStats;
use crate::tls::{ClientTls, ServerTls};

use super::worker::{spawn_workers, DataPlane, ForwardSpec, WorkerCtx, WorkerSockets};
use pool::Shard;

/// Which end of the tunnel this process is.
pub enum TunnelSide {
    /// The server: answers handshakes and accepts pool connections on the tunnel port.
    Server {
        /// What a successful handshake is answered with.
        reply: TunnelConfig,
        /// tls 1/2 server configuration.
        tls: Option<ServerTls>,
    },
    /// The client: dials pool connections to the server.
    Client {
        /// The server's tunnel address.
        server: SocketAddr,
        /// tls 1/2 client configuration (from the handshake reply).
        tls: Option<ClientTls>,
        /// TLS server name.
        sni: String,
        /// `min=` (whole process).
        min: u32,
        /// `max` from the server (whole process).
        max: u32,
        /// `NP_MIN_POOL_INTERVAL`.
        min_interval: Duration,
        /// `NP_MAX_POOL_INTERVAL`.
        max_interval: Duration,
    },
}

/// Everything a tunnel worker needs beyond the forwarding spec; one per run.
pub struct TunnelSpec {
    /// Targets, limits, relay choice: the single-end forwarder's spec, shared.
    pub forward: Arc<ForwardSpec>,
    /// Cross-thread run state (client IP, idle counts, event and signal queues).
    pub shared: Arc<TunnelShared>,
    /// The tunnel key (signal XOR, handshake token).
    pub key: String,
    /// Which end this is.
    pub side: TunnelSide,
    /// `NP_HANDSHAKE_TIMEOUT`.
    pub handshake_timeout: Duration,
    /// `NP_POOL_GET_TIMEOUT`.
    pub pool_get_timeout: Duration,
    /// `NP_REPORT_INTERVAL` (control idle timeout is three of these).
    pub report_interval: Duration,
    /// Number of workers (ids are sharded over them).
    pub workers: usize,
}

/// The sockets one tunnel worker owns.
pub struct TunnelSockets {
    /// Server: this worker's listener on the tunnel port.
    pub tunnel: Option<std::net::TcpListener>,
    /// Where users arrive (server flow `-`, client flow `+`); empty otherwise.
    pub users: WorkerSockets,
}

/// A tunnel worker's own state beside the forwarding [`WorkerCtx`].
pub(super) struct TunnelCtx {
    spec: Arc<TunnelSpec>,
    shard: Shard,
    /// Users arrive at this end: it takes any idle connection for them (the other end
    /// takes connections by the id a signal names).
    accepting: bool,
}

/// Start one tunnel worker per entry of `sockets`, adding to `stats` (one per worker,
/// kept by the caller across restarts so CHECK_POINT counters stay cumulative).
pub fn start_tunnel(
    spec: Arc<TunnelSpec>,
    sockets: Vec<TunnelSockets>,
    stats: Vec<Arc<WorkerStats>>,
    driver: ActiveDriver,
) -> io::Result<DataPlane> {
    let forward = Arc::clone(&spec.forward);
    spawn_workers(
        forward,
        sockets,
        stats,
        driver,
        move |ctx, socks, mailbox| {
            let t = TunnelCtx {
                shard: Shard::new(ctx.index, Arc::clone(&spec.shared)),
                spec: Arc::clone(&spec),
                accepting: socks.users.tcp.is_some() || socks.users.udp.is_some(),
            };
            worker_main(ctx, Rc::new(t), socks, mailbox)
        },
    )
}

fn into_monoio_listener(
    l: std::net::TcpListener,
    driver: ActiveDriver,
) -> io::Result<monoio::net::TcpListener> {
    l.set_nonblocking(driver == ActiveDriver::Legacy)?;
    monoio::net::TcpListener::from_std(l)
}

async fn worker_main(
    ctx: Rc<WorkerCtx>,
    t: Rc<TunnelCtx>,
    socks: TunnelSockets,
    mailbox: Mailbox,
) -> io::Result<()> {
    let native_nonblocking = ctx.driver == ActiveDriver::Legacy;
    watch::start(&ctx, &t);
    if let Some(l) = socks.tunnel {
        let listener = into_monoio_listener(l, ctx.driver)?;
        ctx.spawn(inbound::accept_loop(
            listener,
            Rc::clone(&ctx),
            Rc::clone(&t),
        ));
    }
    if matches!(t.spec.side, TunnelSide::Client { .. }) {
        ctx.spawn(dialer::refill_loop(Rc::clone(&ctx), Rc::clone(&t)));
    }
    if let Some(l) = socks.users.tcp {
        let listener = into_monoio_listener(l, ctx.driver)?;
        ctx.spawn(session::accept_users(
            listener,
            Rc::clone(&ctx),
            Rc::clone(&t),
        ));
    }
    let mut udp_users = None;
    if let Some(u) = socks.users.udp {
        u.set_nonblocking(native_nonblocking)?;
        let socket = monoio::net::udp::UdpSocket::from_std(u)?;
        let users = Rc::new(udp::UdpUsers::new(socket));
        ctx.spawn(udp::serve_users(
            Rc::clone(&users),
            Rc::clone(&ctx),
            Rc::clone(&t),
        ));
        udp_users = Some(users);
    }
    loop {
        match mailbox.recv().await {
            Some(Command::StopAccepting) => ctx.stopping.raise(),
            Some(Command::Targets(targets)) => {
                *ctx.targets.borrow_mut() = targets.iter().copied().collect()
            }
            Some(Command::TunnelTcp { id, remote }) => {
                ctx.spawn(session::serve_signal(
                    id,
                    remote,
                    Rc::clone(&ctx),
                    Rc::clone(&t),
                ));
            }
            Some(Command::TunnelUdp { id, remote }) => {
                ctx.spawn(udp::serve_signal(
                    id,
                    remote,
                    Rc::clone(&ctx),
                    Rc::clone(&t),
                ));
            }
            Some(Command::PoolFlush) => t.shard.flush(),
            Some(Command::AdoptUser { fd, peer }) => {
                let std_stream = std::net::TcpStream::from(fd);
                let adopted = std_stream
                    .set_nonblocking(native_nonblocking)
                    .and_then(|()| monoio::net::TcpStream::from_std(std_stream));
                match adopted {
                    Ok(s) => {
                        ctx.spawn(session::serve_adopted(
                            s,
                            peer,
                            Rc::clone(&ctx),
                            Rc::clone(&t),
                        ));
                    }
                    Err(e) => log::warn!("handed-over connection from {peer} lost: {e}"),
                }
            }
            Some(Command::AdoptUdp {
                client,
                datagram,
                origin,
            }) => match &udp_users {
                Some(users) => udp::adopt(users, client, datagram, origin, &ctx, &t),
                None => {
                    log::debug!("handed-over udp datagram from {client} dropped: no udp socket")
                }
            },
            Some(Command::SendVerify { fp }) => link::send_verify(&ctx, &t, fp),
            Some(Command::CheckVerify { id, fp, own }) => {
                ctx.spawn(link::check_verify(id, fp, own, Rc::clone(&t)));
            }
            Some(Command::CloseAll) | None => break,
        }
    }
    t.shard.flush();
    ctx.close().await;
    Ok(())
}

/// Make a socket fit for monoio's read/write ops on this driver (blocking on io_uring,
/// non-blocking on epoll).
pub(super) fn fit_for_driver(s: &monoio::net::TcpStream, driver: ActiveDriver) {
    let _ = crate::net::set_nonblocking(&crate::sys::borrow_fd(s), driver == ActiveDriver::Legacy);
}
