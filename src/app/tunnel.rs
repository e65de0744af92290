//! The dual-end tunnel (server, or client `mode=2`): one run after another, with backoff.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{bind_worker_sockets, session_spec, worker_count, EXIT_FAILURE};
use crate::bus::TunnelShared;
use crate::config::{Config, RunMode};
use crate::control::backoff::Backoff;
use crate::control::run_error::RunError;
use crate::control::tunnel::{self as tunnel_control, Outcome};
use crate::control::{client as tunnel_client, dns};
use crate::dataplane::{self, TunnelSide, TunnelSockets, TunnelSpec, WorkerSockets};
use crate::proto::{Flow, TunnelConfig};
use crate::stats::WorkerStats;
use crate::{net, runtime, shutdown, tls};

/// Which end of a dual-end tunnel this process runs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    /// `server://`.
    Server,
    /// `client://` in dual-end mode.
    Client,
}

impl End {
    fn word(self) -> &'static str {
        match self {
            End::Server => "Server",
            End::Client => "Client",
        }
    }
}

/// The dual-end tunnel: run, and on a fatal error stop everything, back off, start again.
pub(super) fn run_tunnel(cfg: Config, end: End) -> i32 {
    let word = end.word();
    let driver = match runtime::choose(cfg.env.driver) {
        Ok(d) => d,
        Err(e) => {
            log::error!("{word} error: {e}");
            return EXIT_FAILURE;
        }
    };
    if end == End::Server && !matches!(cfg.params.pool_type, 0..=3) {
        log::error!(
            "Server error: unknown pool type: {} (0 TCP, 1 QUIC, 2 WebSocket, 3 HTTP/2)",
            cfg.params.pool_type
        );
        return EXIT_FAILURE;
    }
    log::info!("{}", cfg.started_line());
    let mut backoff = Backoff::new(cfg.env.service_cooldown);
    // Created once: every run adds to the same counters, so CHECK_POINT stays cumulative
    // per process across restarts (a master reads a drop as a restarted child).
    let stats: Vec<Arc<WorkerStats>> = (0..worker_count(&cfg)).map(|_| Arc::default()).collect();
    // Go keeps the mode auto-selection chose across restarts.
    let mut mode = cfg.params.mode;
    loop {
        let outcome = match end {
            End::Server => server_once(&cfg, driver, &stats, &mut mode),
            End::Client => client_once(&cfg, driver, &stats),
        };
        let (why, healthy) = match outcome {
            Ok(Outcome::Shutdown) => {
                final_checkpoint(mode, &stats);
                log::info!("{word} shutdown complete");
                return 0;
            }
            Ok(Outcome::Fatal(why, healthy)) => (why, healthy),
            Err(why) => (why, None),
        };
        log::error!("{word} error: {why}");
        let delay = backoff.next_delay(healthy.is_some());
        if wait_or_shutdown(driver, delay) {
            final_checkpoint(mode, &stats);
            log::info!("{word} shutdown complete");
            return 0;
        }
        log::info!("{}", cfg.restart_line());
    }
}

/// The bytes since the last report would be lost to a master otherwise (MASTER_API §4.27).
fn final_checkpoint(mode: RunMode, stats: &[Arc<WorkerStats>]) {
    let mode = if mode == RunMode::Auto {
        RunMode::Two
    } else {
        mode
    };
    let snap = crate::stats::snapshot(stats.iter().map(|s| s.as_ref()));
    crate::np_event!(
        "{}",
        crate::stats::checkpoint_line(mode.code(), 0, 0, &snap)
    );
}

/// Sleep `delay` unless a shutdown comes first (then true).
fn wait_or_shutdown(driver: runtime::ActiveDriver, delay: Duration) -> bool {
    let waited = runtime::block_on(driver, || async {
        monoio::select! {
            _ = monoio::time::sleep(delay) => false,
            _ = shutdown::wait() => true,
        }
    });
    waited.unwrap_or(true) || shutdown::requested()
}

fn user_sockets(cfg: &Config, workers: usize) -> std::io::Result<Vec<WorkerSockets>> {
    let first = cfg
        .targets
        .first()
        .ok_or_else(|| std::io::Error::other("no target address"))?;
    let addr = net::resolve_bind_addr(first)?;
    bind_worker_sockets(cfg, addr, workers)
}

/// Pool type 1: one UDP socket per worker on the tunnel port (the TCP listeners' port).
fn quic_sockets(
    cfg: &Config,
    tunnel: &[std::net::TcpListener],
    workers: usize,
) -> Result<Vec<std::net::UdpSocket>, RunError> {
    if cfg.params.pool_type != 1 {
        return Ok(Vec::new());
    }
    let addr = tunnel
        .first()
        .map(std::net::TcpListener::local_addr)
        .transpose()
        .and_then(|a| a.ok_or_else(|| std::io::Error::other("no tunnel listener")))
        .and_then(|a| net::bind_udp_sockets(a, workers));
    addr.map_err(|source| RunError::Listen {
        addr: format!("udp {}", cfg.tunnel),
        source,
    })
}

fn no_user_sockets(workers: usize) -> Vec<WorkerSockets> {
    (0..workers)
        .map(|_| WorkerSockets {
            tcp: None,
            udp: None,
        })
        .collect()
}

/// One server run: bind the tunnel port (and the target in reverse mode), start the
/// workers, run the control loop.
fn server_once(
    cfg: &Config,
    driver: runtime::ActiveDriver,
    stats: &[Arc<WorkerStats>],
    mode: &mut RunMode,
) -> Result<Outcome, RunError> {
    let workers = worker_count(cfg);
    let tunnel = net::resolve_bind_addr(&cfg.tunnel)
        .and_then(|a| net::bind_tcp_listeners(a, workers))
        .map_err(|source| RunError::Listen {
            addr: cfg.tunnel.to_string(),
            source,
        })?;
    let users = match *mode {
        RunMode::Two => no_user_sockets(workers),
        RunMode::One => user_sockets(cfg, workers).map_err(RunError::ListenTarget)?,
        RunMode::Auto => match user_sockets(cfg, workers) {
            Ok(u) => {
                *mode = RunMode::One;
                u
            }
            Err(_) => {
                *mode = RunMode::Two;
                no_user_sockets(workers)
            }
        },
    };
    let flow = if *mode == RunMode::One {
        Flow::Minus
    } else {
        Flow::Plus
    };
    let server_tls = tls::server_config_for(
        cfg.params.tls,
        &cfg.params.crt,
        &cfg.params.key_file,
        cfg.env.reload_interval,
    )?;
    let reply = TunnelConfig {
        flow,
        max: cfg.params.max,
        tls: server_tls.as_ref().map_or(0, |t| t.mode.code()),
        pool_type: cfg.params.pool_type,
    };
    let fingerprint = server_tls.as_ref().map(|t| t.fingerprint());
    // Pool type 1: the tunnel port's UDP side, one SO_REUSEPORT socket per worker (Go binds
    // it at start and closes it for QUIC to take; ours stays bound for the run).
    let mut quic = quic_sockets(cfg, &tunnel, workers)?.into_iter();
    let sockets = tunnel
        .into_iter()
        .zip(users)
        .map(|(t, users)| TunnelSockets {
            tunnel: Some(t),
            quic: quic.next(),
            users,
        })
        .collect();
    let side = TunnelSide::Server {
        reply,
        tls: server_tls,
    };
    let end = tunnel_control::End::Server { fingerprint };
    let plane = PlaneArgs {
        mode: mode.code(),
        framed_udp: false,
        auth: None,
    };
    run_plane(cfg, driver, side, sockets, end, plane, stats)
}

/// One client run: handshake, bind the target in forward flow, start the pool.
fn client_once(
    cfg: &Config,
    driver: runtime::ActiveDriver,
    stats: &[Arc<WorkerStats>],
) -> Result<Outcome, RunError> {
    let workers = worker_count(cfg);
    let server = net::resolve(&cfg.tunnel).map_err(|source| RunError::Resolve {
        addr: cfg.tunnel.to_string(),
        source,
    })?;
    let started = Instant::now();
    let agreed = runtime::block_on(driver, || tunnel_client::handshake(cfg, server))
        .map_err(RunError::ControlRuntime)??;
    let tc = agreed.config;
    let users = if tc.flow == Flow::Plus {
        user_sockets(cfg, workers).map_err(RunError::ListenTarget)?
    } else {
        no_user_sockets(workers)
    };
    let websocket = tc.pool_type == 2;
    let quic = tc.pool_type == 1;
    let http2 = tc.pool_type == 3;
    let client_tls = match tc.tls {
        // Types 1 and 3 are always TLS (a Go server forces tls=1): 0 is taken as 1, and
        // neither verifies unless tls=2.
        0 | 1 if quic || http2 => Some(tls::client_config_insecure()?),
        // Go's type 2 client takes a tunnel on port 443 for a TLS front: wss, verifying.
        0 if websocket && cfg.tunnel.port == 443 => Some(tls::client_config_verifying(
            cfg.env.ssl_cert_file.as_deref(),
        )?),
        0 => None,
        1 => Some(tls::client_config_insecure()?),
        // Like Go's system pool, SSL_CERT_FILE adds a CA bundle to the system roots.
        _ => Some(tls::client_config_verifying(
            cfg.env.ssl_cert_file.as_deref(),
        )?),
    };
    let sockets = users
        .into_iter()
        .map(|users| TunnelSockets {
            tunnel: None,
            quic: None,
            users,
        })
        .collect();
    let side = TunnelSide::Client {
        server,
        tls: client_tls,
        // Type 2 names the tunnel host as Go does (an IP: no SNI), unless `sni=` is given.
        sni: if websocket && cfg.params.sni.is_empty() && !cfg.tunnel.host.is_empty() {
            cfg.tunnel.host.clone()
        } else {
            cfg.sni_name()
        },
        min: cfg.params.min,
        max: tc.max,
        min_interval: cfg.env.min_pool_interval,
        max_interval: cfg.env.max_pool_interval,
        ws_host: websocket.then(|| cfg.tunnel.host.clone()),
        // Go: tls 0/1 name the dialled IP (no SNI); tls 2 verifies `sni=` / host / `none`.
        quic_name: quic.then(|| {
            if tc.tls == 2 {
                cfg.sni_name()
            } else {
                server.ip().to_string()
            }
        }),
        http2: http2.then_some(dataplane::Http2Dial {
            verifying: tc.tls == 2,
        }),
    };
    let end = tunnel_control::End::Client {
        started,
        tls: tc.tls != 0,
    };
    let plane = PlaneArgs {
        mode: RunMode::Two.code(),
        // Type 2 keeps datagram boundaries in its messages: no length prefix.
        framed_udp: agreed.framed_udp,
        auth: agreed.auth,
    };
    run_plane(cfg, driver, side, sockets, end, plane, stats)
}

/// What a run's plane needs beyond sockets and sides.
struct PlaneArgs {
    /// The mode for CHECK_POINT.
    mode: u8,
    /// Client: the server agreed on framed UDP (a server learns it in its handshake).
    framed_udp: bool,
    /// Client: the `auth1` profile the server proved (a server records its own).
    auth: Option<crate::bus::RunAuth>,
}

fn run_plane(
    cfg: &Config,
    driver: runtime::ActiveDriver,
    side: TunnelSide,
    sockets: Vec<TunnelSockets>,
    end: tunnel_control::End,
    args: PlaneArgs,
    stats: &[Arc<WorkerStats>],
) -> Result<Outcome, RunError> {
    let workers = sockets.len();
    let (shared, events) = TunnelShared::new(workers);
    shared
        .framed_udp
        .store(args.framed_udp, std::sync::atomic::Ordering::Release);
    if let Some(auth) = args.auth {
        let _ = shared.auth.set(auth);
    }
    let mode = args.mode;
    let targets = dns::resolve_all(&cfg.targets);
    let spec = Arc::new(TunnelSpec {
        session: Arc::new(session_spec(cfg, targets.clone())),
        shared: Arc::clone(&shared),
        key: cfg.key.clone(),
        side,
        handshake_timeout: cfg.env.handshake_timeout,
        pool_get_timeout: cfg.env.pool_get_timeout,
        report_interval: cfg.env.report_interval,
        workers,
        auth: cfg.params.auth,
    });
    let plane = dataplane::start_tunnel(spec, sockets, stats.to_vec(), driver)
        .map_err(RunError::StartWorkers)?;
    let _ = shared.workers.set(plane.handles.clone());
    let resolver = dns::Resolver::spawn(
        cfg.targets.clone(),
        targets,
        cfg.params.dns_ttl,
        plane.handles.clone(),
    );
    let run = tunnel_control::Run {
        workers: &plane.handles,
        stats: &plane.stats,
        shared: &shared,
        events,
        end,
        mode,
    };
    let outcome = tunnel_control::run(cfg, driver, run);
    if let Some(r) = resolver {
        r.stop();
    }
    plane.join();
    outcome
}
