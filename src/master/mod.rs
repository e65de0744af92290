//! Master mode: the NodePass management API (`master://host:port/prefix?tls=…`).
//!
//! Three rooms on one monoio runtime, whose imports go one way (`api` → `http`,
//! `api` → `instances`; `http` and `instances` import neither room):
//!
//! - `http`: a hand-rolled HTTP/1.1 server that knows nothing of NodePass: it serves a
//!   `Handler` and streams an `EventSource` (server, connection, body parsing, limits,
//!   the event-stream writer).
//! - `api`: the routes of `spec/MASTER_API.md`: router and key check, instances, PATCH,
//!   `/events`, `/info`, `/tcping`, `/metrics`, `/openapi.json`, `/docs`.
//! - `instances`: the instances, child processes of this binary (model, URLs, supervisor,
//!   processes, event hub) and their state file (format, saver, atomic writes).
//!
//! `serve` wires them (bind, load, serve, shut down in Go's order); `options` holds what
//! the master takes from outside, and `tls` the API's TLS acceptor.
//!
//! [`run`] is the program's master mode; [`start`] runs the same master on a background
//! thread for tests and returns a [`MasterHandle`].

mod api;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod instances;
mod options;
mod serve;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

pub use http::limits::HttpLimits;
pub use options::{check_state_dir, default_state_dir, MasterError, MasterOptions};

use crate::config::Config;
use options::Control;

/// A master running on a background thread.
pub struct MasterHandle {
    addr: SocketAddr,
    ctl: Control,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MasterHandle {
    /// The bound API address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Graceful stop: `shutdown` events, stop instances, save state, close the server.
    pub fn stop(mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.join();
    }

    /// Abrupt stop, like `kill -9` of the master: children are killed, state is not saved.
    pub fn abort(mut self) {
        self.ctl.abort.store(true, Ordering::SeqCst);
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for MasterHandle {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::SeqCst);
        self.join();
    }
}

/// Start a master on a background thread; returns once the API listens.
pub fn start(cfg: Config, opts: MasterOptions) -> Result<MasterHandle, MasterError> {
    check_state_dir(&opts.state_dir)?;
    let ctl = Control::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread_ctl = ctl.clone();
    let thread = std::thread::Builder::new()
        .name("np-master".into())
        .spawn(move || {
            serve::serve(cfg, opts, thread_ctl, move |r| {
                let _ = tx.send(r);
            });
        })
        .map_err(|e| MasterError::Thread(e.to_string()))?;
    match rx.recv() {
        Ok(Ok(addr)) => Ok(MasterHandle {
            addr,
            ctl,
            thread: Some(thread),
        }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => Err(MasterError::Thread(
            "master thread ended during start".into(),
        )),
    }
}

/// The master mode of the program: serve until SIGINT/SIGTERM; returns the exit code.
pub fn run(cfg: Config) -> i32 {
    let ctl = Control {
        follow_signals: true,
        ..Control::default()
    };
    let mut failed = false;
    let opts = MasterOptions::for_config(&cfg);
    if let Err(e) = check_state_dir(&opts.state_dir) {
        log::error!("Master error: {e}");
        return 1;
    }
    serve::serve(cfg, opts, ctl, |r| {
        if let Err(e) = r {
            log::error!("Master error: {e}");
            failed = true;
        }
    });
    i32::from(failed)
}
