//! The dual-end tunnel's data plane: per-worker pool shards, the server's tunnel port
//! (handshake, then pool connections), the client's pool dialer, the control channel's
//! reader/writer, and user sessions in both directions over pool connections.
//!
//! Each pool connection is owned by the worker that accepted (server) or dialled (client)
//! it for its whole life. Signals reach the owner as [`TunnelCommand`]s (routed by
//! `bus::route`); the control channel (pool id `00000000`) is read and written on the worker
//! that owns it, which forwards decoded signals as [`crate::bus::Event::Signal`].

mod caps;
mod dialer;
mod http2;
mod inbound;
mod link;
mod pending;
mod pool;
mod pool_io;
mod quic;
mod session;
mod strangers;
mod udp;
mod waits;
mod watch;
mod ws;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::bus::{TunnelCommand, TunnelShared};
use crate::proto::TunnelConfig;
use crate::runtime::ActiveDriver;
use crate::stats::WorkerStats;
use crate::tls::{ClientTls, ServerTls};

use super::host::{spawn_workers, DataPlane, ModeWorker, WorkerCtx, WorkerSockets};
use super::spec::SessionSpec;
pub use http2::Dial as Http2Dial;
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
        /// Pool type 2: the tunnel host (without port) for the WebSocket `Host` header;
        /// `None` for the TCP pool.
        ws_host: Option<String>,
        /// Pool type 1: the QUIC TLS server name (the tunnel IP text for tls 0/1: no
        /// SNI); `None` for the other pool types.
        quic_name: Option<String>,
        /// Pool type 3: how the HTTP/2 pool connections are dialled; `None` otherwise.
        http2: Option<Http2Dial>,
    },
}

/// Everything a tunnel worker needs beyond the session spec; one per run.
pub struct TunnelSpec {
    /// Targets, limits, relay choice: how every session is admitted and relayed.
    pub session: Arc<SessionSpec>,
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
    /// `auth=`: a strict server refuses clients without the `auth1` profile.
    pub auth: crate::config::AuthPolicy,
}

/// The sockets one tunnel worker owns.
pub struct TunnelSockets {
    /// Server: this worker's listener on the tunnel port.
    pub tunnel: Option<std::net::TcpListener>,
    /// Server, pool type 1: this worker's UDP socket on the tunnel port.
    pub quic: Option<std::net::UdpSocket>,
    /// Where users arrive (server flow `-`, client flow `+`); empty otherwise.
    pub users: WorkerSockets,
}

/// A tunnel worker's own state beside the host's [`WorkerCtx`].
pub(super) struct TunnelCtx {
    spec: Arc<TunnelSpec>,
    shard: Shard,
    /// Users arrive at this end: it takes any idle connection for them (the other end
    /// takes connections by the id a signal names).
    accepting: bool,
    /// Signals waiting for their pool connection, bounded.
    waits: waits::Waits,
    /// Server: tunnel-port connections that have not proved themselves yet.
    crowd: Rc<crate::crowd::Crowd>,
    /// Server: refusals of connections from other IPs than the client's, summed up.
    refused: crate::crowd::RefusalLog,
    /// Server: WARN lines about bad tunnel-port connections, within a budget.
    warns: crate::crowd::WarnBudget,
    /// Pool type 1: this worker's QUIC endpoint.
    quic: quic::QuicSlot,
    /// Client, pool type 3: this worker's HTTP/2 connections.
    h2: http2::ClientConns,
}

/// A tunnel worker: its [`TunnelCtx`] and, where users send datagrams to this end, its
/// UDP users.
struct TunnelWorker {
    t: Rc<TunnelCtx>,
    udp_users: Option<Rc<udp::UdpUsers>>,
}

/// Start one tunnel worker per entry of `sockets`, adding to `stats` (one per worker,
/// kept by the caller across restarts so CHECK_POINT counters stay cumulative).
pub fn start_tunnel(
    spec: Arc<TunnelSpec>,
    sockets: Vec<TunnelSockets>,
    stats: Vec<Arc<WorkerStats>>,
    driver: ActiveDriver,
) -> io::Result<DataPlane<TunnelCommand>> {
    let session = Arc::clone(&spec.session);
    spawn_workers(session, sockets, stats, driver, move |ctx, socks| {
        start(ctx, Arc::clone(&spec), socks)
    })
}

fn start(
    ctx: &Rc<WorkerCtx>,
    spec: Arc<TunnelSpec>,
    socks: TunnelSockets,
) -> io::Result<TunnelWorker> {
    let t = Rc::new(TunnelCtx {
        shard: Shard::new(ctx.index, Arc::clone(&spec.shared)),
        accepting: socks.users.tcp.is_some() || socks.users.udp.is_some(),
        waits: waits::Waits::new(),
        crowd: caps::crowd(&spec),
        refused: crate::crowd::RefusalLog::default(),
        warns: crate::crowd::WarnBudget::default(),
        quic: quic::QuicSlot::default(),
        h2: http2::ClientConns::default(),
        spec,
    });
    watch::start(ctx, &t);
    if let Some(l) = socks.tunnel {
        let listener = ctx.adopt_listener(l)?;
        ctx.spawn(inbound::accept_loop(
            listener,
            Rc::clone(ctx),
            Rc::clone(&t),
        ));
    }
    if let Some(u) = socks.quic {
        t.quic.set_server(quic::server::start(u, ctx, &t)?);
    }
    if matches!(t.spec.side, TunnelSide::Client { .. }) {
        ctx.spawn(dialer::refill_loop(Rc::clone(ctx), Rc::clone(&t)));
    }
    if let Some(l) = socks.users.tcp {
        let listener = ctx.adopt_listener(l)?;
        ctx.spawn(session::accept_users(
            listener,
            Rc::clone(ctx),
            Rc::clone(&t),
        ));
    }
    let mut udp_users = None;
    if let Some(u) = socks.users.udp {
        let users = Rc::new(udp::UdpUsers::new(ctx.adopt_udp(u)?));
        ctx.spawn(udp::serve_users(
            Rc::clone(&users),
            Rc::clone(ctx),
            Rc::clone(&t),
        ));
        udp_users = Some(users);
    }
    Ok(TunnelWorker { t, udp_users })
}

impl ModeWorker for TunnelWorker {
    type Command = TunnelCommand;

    fn on_command(&self, ctx: &Rc<WorkerCtx>, cmd: TunnelCommand) {
        let t = &self.t;
        match cmd {
            TunnelCommand::Tcp { id, remote } => {
                ctx.spawn(session::serve_signal(
                    id,
                    remote,
                    Rc::clone(ctx),
                    Rc::clone(t),
                ));
            }
            TunnelCommand::Udp { id, remote } => {
                ctx.spawn(udp::serve_signal(id, remote, Rc::clone(ctx), Rc::clone(t)));
            }
            TunnelCommand::PoolFlush => t.shard.flush(),
            TunnelCommand::AdoptUser { fd, peer } => match ctx.adopt_stream(fd) {
                Ok(s) => ctx.spawn(session::serve_adopted(
                    s,
                    peer,
                    Rc::clone(ctx),
                    Rc::clone(t),
                )),
                Err(e) => log::warn!("handed-over connection from {peer} lost: {e}"),
            },
            TunnelCommand::AdoptUdp {
                client,
                datagram,
                origin,
            } => match &self.udp_users {
                Some(users) => udp::adopt(users, client, datagram, origin, ctx, t),
                None => {
                    log::debug!("handed-over udp datagram from {client} dropped: no udp socket")
                }
            },
            TunnelCommand::SendVerify { fp } => link::send_verify(ctx, t, fp),
            TunnelCommand::CheckVerify { id, fp, own } => {
                ctx.spawn(link::check_verify(
                    id,
                    fp,
                    own,
                    Rc::clone(ctx),
                    Rc::clone(t),
                ));
            }
        }
    }

    fn before_close(&self) {
        self.t.shard.flush();
        self.t.quic.close();
    }
}

/// Go's INFO line for the configuration a handshake is answered with (dashboards show it).
fn log_sending_config(reply: &TunnelConfig) {
    log::info!(
        "Sending tunnel config: FLOW={}|MAX={}|TLS={}|TYPE={}",
        reply.flow.as_str(),
        reply.max,
        reply.tls,
        reply.pool_type
    );
}

/// Our answer to a second valid handshake while a tunnel is running (or while too many
/// `auth1` handshakes wait for their proof).
const CONFLICT: &[u8] = b"HTTP/1.1 409 Conflict\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 9\r\n\r\nConflict\n";

/// How long a pool connection of an `auth1` run may take to prove the key.
const PROOF_WAIT: Duration = Duration::from_secs(5);
