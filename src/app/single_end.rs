//! Client `mode=1`: bind the tunnel address on every worker and forward to the targets.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{worker_count, EXIT_FAILURE};
use crate::config::Config;
use crate::control::{dns, single_end};
use crate::dataplane::{self, ForwardSpec, RelayKind, SourcePolicy, WorkerSockets};
use crate::limit::{RateLimiter, SlotLimit};
use crate::{net, runtime};

/// Bind the tunnel address once per worker for TCP and UDP (unless `notcp`/`noudp`).
pub(super) fn bind_worker_sockets(
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

pub(super) fn forward_spec(cfg: &Config, targets: Vec<Option<SocketAddr>>) -> ForwardSpec {
    let rate = cfg.rate_bytes_per_sec();
    ForwardSpec {
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

/// Client `mode=1`: listen on the tunnel address, forward to the targets.
pub(super) fn run_single_end(cfg: Config) -> i32 {
    let driver = match runtime::choose(cfg.env.driver) {
        Ok(d) => d,
        Err(e) => {
            log::error!("Client error: {e}");
            return EXIT_FAILURE;
        }
    };
    let workers = worker_count(&cfg);
    let sockets = match net::resolve_bind_addr(&cfg.tunnel)
        .and_then(|a| bind_worker_sockets(&cfg, a, workers))
    {
        Ok(s) => s,
        Err(e) => {
            log::error!("Client error: cannot listen on {}: {e}", cfg.tunnel);
            return EXIT_FAILURE;
        }
    };
    let targets = dns::resolve_all(&cfg.targets);
    let spec = Arc::new(forward_spec(&cfg, targets.clone()));
    log::info!("{}", cfg.started_line());
    log::info!(
        "Data plane: {workers} worker(s) on {}, relay {:?}",
        driver.name(),
        spec.relay
    );
    let plane = match dataplane::start_forwarder(spec, sockets, driver) {
        Ok(p) => p,
        Err(e) => {
            log::error!("Client error: cannot start workers: {e}");
            return EXIT_FAILURE;
        }
    };
    let resolver = dns::Resolver::spawn(
        cfg.targets.clone(),
        targets.clone(),
        cfg.params.dns_ttl,
        plane.handles.clone(),
    );
    let result = single_end::run(
        &cfg,
        driver,
        single_end::Plane {
            workers: &plane.handles,
            stats: &plane.stats,
            targets,
        },
    );
    if let Some(r) = resolver {
        r.stop();
    }
    let stats = plane.stats.clone();
    plane.join();
    // The bytes since the last report would be lost to a master otherwise (MASTER_API §4.27).
    let snap = crate::stats::snapshot(stats.iter().map(|s| s.as_ref()));
    crate::np_event!("{}", crate::stats::checkpoint_line(1, 0, 0, &snap));
    match result {
        Ok(()) => {
            log::info!("Client shutdown complete");
            0
        }
        Err(e) => {
            log::error!("Client error: {e}");
            EXIT_FAILURE
        }
    }
}
