//! The master's instance state on its single runtime thread: instances, key, event hub,
//! state files, settings.
//!
//! Everything lives in one `Rc<Master>`; the supervisor and the API handlers borrow it
//! briefly and never hold a `RefCell` borrow across an `.await`.

use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::atomic_file::Writer;
use super::hub::Hub;
use super::model::{Instance, KEY_ID};
use super::urls::UrlDefaults;
use super::watch::ChildEvent;
use crate::config::Env;
use crate::wake::QueueTx;

/// Shared master state.
pub struct Master {
    /// Program run for each instance, with the instance URL as its only argument.
    pub exe: PathBuf,
    /// How often counter-only changes are written to the state file.
    pub counter_save_interval: Duration,
    /// `NP_*` environment of the master.
    pub env: Env,
    /// Master settings copied into instance URLs (and shown by `/info`).
    pub defaults: UrlDefaults,
    /// Master id (16 hex), persisted.
    pub mid: String,
    /// Master alias, persisted.
    pub alias: RefCell<String>,
    /// All instances, the key pseudo-instance first.
    pub instances: RefCell<Vec<Instance>>,
    /// SSE subscribers.
    pub hub: Hub,
    /// The state file needs writing (structure changed).
    pub dirty: Cell<bool>,
    /// Raised with `dirty`, so the saver sleeps until there is something to save.
    pub save_wanted: crate::wake::LocalFlag,
    /// Only counters changed since the last save.
    pub counters_dirty: Cell<bool>,
    /// Where children report.
    pub children: QueueTx<ChildEvent>,
    /// Set once shutdown starts: no new children.
    pub closing: Cell<bool>,
    /// The state file `nodepass.json` and its only writer.
    pub state_file: Arc<Writer>,
    /// The backup copy next to it and its only writer.
    pub backup_file: Arc<Writer>,
}

impl Master {
    /// Run `f` on the instance `id`, if it exists.
    pub fn with<R>(&self, id: &str, f: impl FnOnce(&mut Instance) -> R) -> Option<R> {
        let mut all = self.instances.borrow_mut();
        all.iter_mut().find(|i| i.id == id).map(f)
    }

    /// The instance's API JSON.
    pub fn json_of(&self, id: &str) -> Option<Value> {
        self.with(id, |i| i.to_json())
    }

    /// The current API key ("" = auth off).
    pub fn api_key(&self) -> String {
        self.with(KEY_ID, |i| i.url.clone()).unwrap_or_default()
    }

    /// Publish an event about `id` to every subscriber.
    pub fn emit(&self, kind: &str, id: &str) {
        if let Some(v) = self.json_of(id) {
            self.hub.publish(kind, Some(v), "");
        }
    }

    /// Structure changed: save soon.
    pub fn mark_dirty(&self) {
        self.dirty.set(true);
        self.save_wanted.raise();
    }

    /// Report interval (`NP_REPORT_INTERVAL`).
    pub fn report_interval(&self) -> Duration {
        self.env.report_interval
    }
}

/// `n` random bytes as lowercase hex (from the kernel's CSPRNG).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let filled = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    if filled.is_err() {
        // No /dev/urandom: fall back to a hash of time and pid (ids only need uniqueness;
        // the API key then is weaker, so say so).
        log::warn!("/dev/urandom unavailable; using a time-based id");
        let seed = Instant::now().elapsed().as_nanos() as u64
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos() as u64
            ^ u64::from(std::process::id()) << 32;
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (seed
                .rotate_left(i as u32 * 8)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                >> 56) as u8;
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_hex_has_the_asked_length_and_alphabet() {
        let k = random_hex(16);
        assert_eq!(k.len(), 32);
        assert!(k
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
        assert_ne!(k, random_hex(16));
    }
}
