//! Wires one mode (server, client, master) from a [`Config`] and runs it until shutdown.
//!
//! `single_end` runs client `mode=1`; `tunnel` runs the dual-end server and client with
//! their restart loop; master mode lives in [`crate::master`].

mod single_end;
mod tunnel;

use std::net::SocketAddr;

use crate::config::{Config, RunMode, Scheme};
use crate::dataplane::{RelayKind, SessionSpec, SourcePolicy, WorkerSockets};
use crate::limit::{RateLimiter, SlotLimit};
use crate::{net, shutdown};
use single_end::run_single_end;
use tunnel::{run_tunnel, End};

/// Exit code for a run that ended in an error after start (bind failure, runtime failure).
pub(crate) const EXIT_FAILURE: i32 = 1;

/// Run the mode the configuration names until it is shut down; returns the process exit code.
pub fn run(cfg: Config) -> i32 {
    shutdown::install();
    match cfg.scheme {
        Scheme::Client => run_client(cfg),
        Scheme::Server => run_tunnel(cfg, End::Server),
        Scheme::Master => crate::master::run(cfg),
    }
}

fn run_client(cfg: Config) -> i32 {
    match cfg.params.mode {
        RunMode::One => run_single_end(cfg),
        // NodePass: a client whose tunnel address can be bound becomes a local forwarder.
        RunMode::Auto if tunnel_bindable(&cfg) => {
            if looks_like_tunnel(&cfg) {
                log::info!(
                    "Auto mode: tunnel address {} could be bound, so this client forwards locally (single-end) instead of dialling a server; add mode=2 to always run the tunnel",
                    cfg.tunnel
                );
            }
            run_single_end(cfg)
        }
        RunMode::Auto | RunMode::Two => run_tunnel(cfg, End::Client),
    }
}

/// A key in the URL (one that is not the port-derived default) says the user meant a tunnel.
fn looks_like_tunnel(cfg: &Config) -> bool {
    cfg.key != crate::config::derive_key(&cfg.tunnel.port.to_string())
}

fn tunnel_bindable(cfg: &Config) -> bool {
    net::resolve_bind_addr(&cfg.tunnel)
        .and_then(|a| net::bind_tcp_listeners(a, 1))
        .is_ok()
}

pub(crate) fn worker_count(cfg: &Config) -> usize {
    cfg.env
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1)
}

/// Bind `addr` once per worker for TCP and UDP (unless `notcp`/`noudp`): the user-facing
/// sockets of every mode.
pub(crate) fn bind_worker_sockets(
    cfg: &Config,
    addr: SocketAddr,
    workers: usize,
) -> std::io::Result<Vec<WorkerSockets>> {
    let mut tcp = if cfg.params.no_tcp {
        Vec::new()
    } else {
        net::bind_tcp_listeners(addr, workers)?
    };
    // UDP binds the port TCP got (it matters when the URL asks for port 0).
    let udp_addr = tcp
        .first()
        .and_then(|l| l.local_addr().ok())
        .unwrap_or(addr);
    let mut udp = if cfg.params.no_udp {
        Vec::new()
    } else {
        net::bind_udp_sockets(udp_addr, workers)?
    };
    if let Some(l) = tcp.first() {
        log::info!("Listening on {} (tcp)", l.local_addr()?);
    }
    if let Some(u) = udp.first() {
        log::info!("Listening on {} (udp)", u.local_addr()?);
    }
    let mut tcp = tcp.drain(..);
    let mut udp = udp.drain(..);
    Ok((0..workers)
        .map(|_| WorkerSockets {
            tcp: tcp.next(),
            udp: udp.next(),
        })
        .collect())
}

/// How every session of this run is admitted and relayed, from the URL and environment.
pub(crate) fn session_spec(cfg: &Config, targets: Vec<Option<SocketAddr>>) -> SessionSpec {
    let rate = cfg.rate_bytes_per_sec();
    SessionSpec {
        targets: targets.into(),
        source: SourcePolicy::new(cfg.params.dial),
        tcp_dial_timeout: cfg.env.tcp_dial_timeout,
        read_timeout: cfg.params.read_timeout,
        udp_read_timeout: cfg.env.udp_read_timeout,
        udp_buf_size: cfg.env.udp_data_buf_size,
        tcp_buf_size: cfg.env.tcp_data_buf_size,
        keepalive: cfg.env.report_interval,
        proxy: cfg.params.proxy,
        block: cfg.params.block,
        slots: SlotLimit::new(cfg.params.slot),
        rate_rx: rate.map(RateLimiter::new),
        rate_tx: rate.map(RateLimiter::new),
        relay: RelayKind::from_env_value(cfg.env.relay.as_deref()),
    }
}
