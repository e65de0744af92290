//! Wires one mode (server, client, master) from a [`Config`] and runs it until shutdown.
//!
//! `single_end` runs client `mode=1`; `tunnel` runs the dual-end server and client with
//! their restart loop; master mode lives in [`crate::master`].

mod single_end;
mod tunnel;

use crate::config::{Config, RunMode, Scheme};
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
        RunMode::Auto if tunnel_bindable(&cfg) => run_single_end(cfg),
        RunMode::Auto | RunMode::Two => run_tunnel(cfg, End::Client),
    }
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
