//! Client `mode=1`: bind the tunnel address on every worker and forward to the targets.

use std::sync::Arc;

use super::{bind_worker_sockets, session_spec, worker_count, EXIT_FAILURE};
use crate::config::Config;
use crate::control::{dns, single_end};
use crate::dataplane;
use crate::{net, runtime};

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
    let spec = Arc::new(session_spec(&cfg, targets.clone()));
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
