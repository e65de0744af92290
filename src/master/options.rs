//! What the master takes from outside besides its URL ([`MasterOptions`]), why it can fail
//! to start ([`MasterError`]), and how its serving loop is told to stop.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::http::limits::HttpLimits;
use super::instances::state::LoadError;
use crate::config::{Config, Env};

/// Where the state file lives: `NP_MASTER_STATE_DIR`, else systemd's `STATE_DIRECTORY`
/// (the unit's `StateDirectory=`), else `<directory of the executable>/state` (Go keeps
/// `gob/` next to the binary). The image sets `NP_MASTER_STATE_DIR=/data`.
pub fn default_state_dir(env: &Env) -> PathBuf {
    if let Some(dir) = env
        .master_state_dir
        .as_ref()
        .or(env.systemd_state_dir.as_ref())
    {
        return dir.clone();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map(|p| p.join("state"))
        .unwrap_or_else(|| PathBuf::from("state"))
}

/// Create `dir` if needed and prove it writable (a probe file created and removed), so a
/// master that could never save says so at start instead of failing every save.
pub fn check_state_dir(dir: &Path) -> Result<(), MasterError> {
    let fail = |e: std::io::Error| MasterError::StateDir(dir.to_path_buf(), e);
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(format!(".nodepass-probe-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)
        .map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
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
            url_log: cfg.raw_log.clone(),
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
    State(LoadError),
    /// The state directory cannot be created or written.
    StateDir(PathBuf, std::io::Error),
}

impl std::fmt::Display for MasterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MasterError::Bind(addr, e) => write!(f, "bind {addr}: {e}"),
            MasterError::Runtime(e) => write!(f, "runtime: {e}"),
            MasterError::Thread(e) => write!(f, "master thread: {e}"),
            MasterError::State(e) => write!(f, "{e}"),
            MasterError::StateDir(dir, e) => write!(
                f,
                "state directory {} is not writable: {e}; set NP_MASTER_STATE_DIR to a writable directory",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for MasterError {}

/// How the serving loop is told to end.
#[derive(Clone, Default)]
pub(super) struct Control {
    /// Graceful stop (Go's shutdown order).
    pub(super) stop: Arc<AtomicBool>,
    /// Abrupt stop: children killed, nothing saved (a crash, for tests).
    pub(super) abort: Arc<AtomicBool>,
    /// Also stop on SIGINT/SIGTERM (`crate::shutdown`).
    pub(super) follow_signals: bool,
}

impl Control {
    /// True once the loop must end (graceful stop, abort, or a shutdown signal).
    pub(super) fn should_stop(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
            || self.aborted()
            || (self.follow_signals && crate::shutdown::requested())
    }

    /// True for an abrupt stop.
    pub(super) fn aborted(&self) -> bool {
        self.abort.load(Ordering::SeqCst)
    }
}
