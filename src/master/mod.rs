//! Master mode: the NodePass management API (`master://host:port/prefix?tls=…`).
//!
//! A hand-rolled HTTP/1.1 server (`http`, `body`) serves the routes of
//! `spec/MASTER_API.md` (`router`, `api`, `patch`, `info`, `tcping`, `openapi`,
//! `docs_page`, `metrics`) and the event stream (`sse`, `sse_stream`) on one monoio
//! runtime. Instances are child processes of this binary (`process`, `supervisor`,
//! `checkpoint`), described by `model` and `urls`, persisted by `state` (format, load with
//! backup fallback), `saver` (when to write) and `atomic_file` (how to write).
//!
//! [`run`] is the program's master mode; [`start`] runs the same master on a background
//! thread for tests and returns a [`MasterHandle`].

mod api;
mod atomic_file;
mod body;
mod checkpoint;
mod core;
mod docs_page;
mod http;
mod inbox;
mod info;
mod metrics;
mod model;
mod openapi;
mod patch;
mod process;
mod router;
mod saver;
mod serve;
mod sse;
mod sse_stream;
mod state;
mod supervisor;
mod tcping;
mod tls;
mod urls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use http::HttpLimits;

use crate::config::{Config, Env};

/// Where the state file lives unless told otherwise: `NP_MASTER_STATE_DIR` (as read into
/// `env`), else `<directory of the executable>/state` (Go keeps `gob/` next to the binary).
pub fn default_state_dir(env: &Env) -> PathBuf {
    if let Some(dir) = &env.master_state_dir {
        return dir.clone();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map(|p| p.join("state"))
        .unwrap_or_else(|| PathBuf::from("state"))
}

/// Everything the master takes from outside besides its URL (injectable for tests).
#[derive(Clone, Debug)]
pub struct MasterOptions {
    /// Program run for each instance, with the instance URL as its only argument.
    pub exe: PathBuf,
    /// Directory of `nodepass.json`.
    pub state_dir: PathBuf,
    /// HTTP deadlines and connection cap.
    pub http: HttpLimits,
    /// Refuse instance URLs that `config::parse_url` rejects (400) instead of letting
    /// the child fail at start.
    pub validate_urls: bool,
    /// How often counter-only changes are written to the state file.
    pub counter_save_interval: Duration,
    /// The master URL's `log=` value as written ("" when absent): Go fills exactly this
    /// into instance URLs and `/info`, so an absent `log=` adds nothing (PROTOCOL.md §7).
    pub url_log: String,
}

impl MasterOptions {
    /// Production defaults for `cfg`: this executable, [`default_state_dir`], the URL's raw `log=`.
    pub fn for_config(cfg: &Config) -> Self {
        MasterOptions {
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("nodepass")),
            state_dir: default_state_dir(&cfg.env),
            http: HttpLimits::default(),
            validate_urls: true,
            counter_save_interval: Duration::from_secs(30),
            url_log: cfg.env.url_log.clone(),
        }
    }
}

/// Why the master could not start.
#[derive(Debug)]
pub enum MasterError {
    /// The API address could not be bound.
    Bind(String, std::io::Error),
    /// The monoio runtime could not be built.
    Runtime(std::io::Error),
    /// The master thread could not be spawned or died during start.
    Thread(String),
    /// The state file exists but neither it nor its backup can be loaded.
    State(state::LoadError),
}

impl std::fmt::Display for MasterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterError::Bind(addr, e) => write!(f, "bind {addr}: {e}"),
            MasterError::Runtime(e) => write!(f, "runtime: {e}"),
            MasterError::Thread(e) => write!(f, "master thread: {e}"),
            MasterError::State(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for MasterError {}

/// How the serving loop is told to end.
#[derive(Clone, Default)]
pub(crate) struct Control {
    /// Graceful stop (Go's shutdown order).
    stop: Arc<AtomicBool>,
    /// Abrupt stop: children killed, nothing saved (a crash, for tests).
    abort: Arc<AtomicBool>,
    /// Also stop on SIGINT/SIGTERM (`crate::shutdown`).
    follow_signals: bool,
}

impl Control {
    fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
            || self.aborted()
            || (self.follow_signals && crate::shutdown::requested())
    }

    fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}

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
    serve::serve(cfg, opts, ctl, |r| {
        if let Err(e) = r {
            log::error!("Master error: {e}");
            failed = true;
        }
    });
    i32::from(failed)
}
