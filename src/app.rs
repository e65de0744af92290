//! Wires one mode (server, client, master) from a [`Config`] and runs it until shutdown.

use crate::config::Config;

/// Run the mode the configuration names until it is shut down; returns the process exit code.
pub fn run(cfg: Config) -> i32 {
    eprintln!("mode {} is not wired yet", cfg.scheme.as_str());
    1
}
