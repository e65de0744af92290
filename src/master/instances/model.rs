//! The instance record: what the API shows, what the state file keeps, and the traffic-counter rules.

use serde_json::{json, Map, Value};
use std::time::Instant;

use super::process::ChildHandle;
use crate::stats::CheckPoint;

/// The id of the API-key pseudo-instance.
pub const KEY_ID: &str = "********";

/// Longest alias, peer field, tag key or tag value (Go's `maxValueLen`).
pub const MAX_VALUE_LEN: usize = 256;

/// Instance status as the dashboards read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Child process up (or starting).
    Running,
    /// Not running.
    Stopped,
    /// Died, reported an error, or went silent.
    Error,
    /// The key pseudo-instance has no status (`""`).
    None,
}

impl Status {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Stopped => "stopped",
            Status::Error => "error",
            Status::None => "",
        }
    }
}

/// `meta.peer`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Peer {
    /// Service id.
    pub sid: String,
    /// Service type.
    pub kind: String,
    /// Service alias.
    pub alias: String,
}

/// One managed instance (or the key pseudo-instance).
pub struct Instance {
    /// 8 hex chars, or [`KEY_ID`].
    pub id: String,
    /// User-given name.
    pub alias: String,
    /// `client`, `server`, or "" for the key.
    pub kind: String,
    /// Current status.
    pub status: Status,
    /// Enhanced command URL (the API key for [`KEY_ID`]).
    pub url: String,
    /// URL with every default (the master id for [`KEY_ID`]).
    pub config: String,
    /// Start with the master.
    pub restart: bool,
    /// `meta.peer`.
    pub peer: Peer,
    /// `meta.tags`, in insertion order.
    pub tags: Vec<(String, String)>,
    /// The last CHECK_POINT: mode and gauges as reported (gauges zeroed when the child is
    /// gone). Its counters are the child's own; the shown ones are `traffic`.
    pub reported: CheckPoint,
    /// Shown counters: tcprx, tcptx, udprx, udptx.
    pub traffic: [u64; 4],
    /// Counters when the current child started.
    pub base: [u64; 4],
    /// Child-reported values at the last `reset`.
    pub reset: [u64; 4],
    /// Runtime-only supervision state.
    pub run: RunState,
}

/// Supervision state that is never persisted.
#[derive(Default)]
pub struct RunState {
    /// The live child, if any.
    pub child: Option<ChildHandle>,
    /// Bumped for every spawn, so output of an older child is ignored.
    pub generation: u64,
    /// When the last CHECK_POINT arrived.
    pub last_checkpoint: Option<Instant>,
    /// A stop is in progress (its exit is not an error).
    pub stopping: bool,
    /// The instance was deleted; late child output is dropped.
    pub deleted: bool,
}

impl Instance {
    /// A new, stopped instance.
    pub fn new(id: String, kind: &str, url: String, config: String) -> Self {
        Instance {
            id,
            alias: String::new(),
            kind: kind.to_string(),
            status: Status::Stopped,
            url,
            config,
            restart: true,
            peer: Peer::default(),
            tags: Vec::new(),
            reported: CheckPoint::default(),
            traffic: [0; 4],
            base: [0; 4],
            reset: [0; 4],
            run: RunState::default(),
        }
    }

    /// The API-key pseudo-instance.
    pub fn key(key: String, mid: String) -> Self {
        let mut inst = Instance::new(KEY_ID.to_string(), "", key, mid);
        inst.status = Status::None;
        inst.restart = false;
        inst
    }

    /// True for the API-key pseudo-instance.
    pub fn is_key(&self) -> bool {
        self.id == KEY_ID
    }

    /// Apply a CHECK_POINT with Go's base/reset rule: shown = base + reported − reset offset;
    /// a reported value below the offset means the child restarted, so the offset is dropped.
    pub fn apply_checkpoint(&mut self, cp: &CheckPoint) {
        self.reported = *cp;
        for i in 0..4 {
            if cp.traffic[i] < self.reset[i] {
                self.reset[i] = 0;
            }
            self.traffic[i] = self.base[i].saturating_add(cp.traffic[i] - self.reset[i]);
        }
    }

    /// `action: reset`: zero the shown counters; later CHECK_POINTs count from here.
    pub fn reset_traffic(&mut self) {
        for i in 0..4 {
            self.reset[i] =
                self.reset[i].saturating_add(self.traffic[i].saturating_sub(self.base[i]));
            self.traffic[i] = 0;
            self.base[i] = 0;
        }
    }

    /// A new child starts counting from zero on top of what is shown now.
    pub fn begin_child(&mut self) {
        self.base = self.traffic;
        self.reset = [0; 4];
    }

    /// Gauges go to zero when the child is gone.
    pub fn clear_gauges(&mut self) {
        let r = &mut self.reported;
        (r.ping_ms, r.pool, r.tcps, r.udps) = (0, 0, 0, 0);
    }

    /// The API JSON object: every key always present, in Go's order.
    pub fn to_json(&self) -> Value {
        let mut tags = Map::new();
        for (k, v) in &self.tags {
            tags.insert(k.clone(), Value::String(v.clone()));
        }
        let r = &self.reported;
        json!({
            "id": self.id, "alias": self.alias, "type": self.kind, "status": self.status.as_str(),
            "url": self.url, "config": self.config, "restart": self.restart,
            "meta": {"peer": {"sid": self.peer.sid, "type": self.peer.kind, "alias": self.peer.alias}, "tags": tags},
            "mode": gauge(r.mode), "ping": gauge(r.ping_ms), "pool": gauge(r.pool), "tcps": gauge(r.tcps), "udps": gauge(r.udps),
            "tcprx": self.traffic[0], "tcptx": self.traffic[1], "udprx": self.traffic[2], "udptx": self.traffic[3],
        })
    }
}

/// A reported mode or gauge as the API shows it: a 32-bit number, saturated.
pub fn gauge(v: u64) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(rx: u64) -> CheckPoint {
        CheckPoint {
            mode: 1,
            traffic: [rx, 0, 0, 0],
            ..CheckPoint::default()
        }
    }

    #[test]
    fn counters_accumulate_across_children_and_survive_a_reset() {
        let mut inst = Instance::new("abcd0123".into(), "client", "u".into(), "c".into());
        inst.begin_child();
        inst.apply_checkpoint(&cp(100));
        assert_eq!(inst.traffic[0], 100);
        inst.reset_traffic();
        assert_eq!(inst.traffic[0], 0);
        inst.apply_checkpoint(&cp(150));
        assert_eq!(inst.traffic[0], 50, "only bytes after the reset count");
        inst.begin_child();
        inst.apply_checkpoint(&cp(30));
        assert_eq!(
            inst.traffic[0], 80,
            "a restarted child adds on top of the shown value"
        );
    }

    #[test]
    fn a_reset_then_child_restart_drops_the_stale_offset() {
        let mut inst = Instance::new("abcd0123".into(), "client", "u".into(), "c".into());
        inst.apply_checkpoint(&cp(1000));
        inst.reset_traffic();
        inst.apply_checkpoint(&cp(10));
        assert_eq!(inst.traffic[0], 10);
    }

    #[test]
    fn the_json_has_every_key_even_for_a_fresh_instance() {
        let v = Instance::new("abcd0123".into(), "server", "u".into(), "c".into()).to_json();
        for k in [
            "id", "alias", "type", "status", "url", "config", "restart", "meta", "mode", "ping",
            "pool", "tcps", "udps", "tcprx", "tcptx", "udprx", "udptx",
        ] {
            assert!(v.get(k).is_some(), "missing {k}");
        }
        assert_eq!(v["meta"]["peer"]["sid"], "");
        assert!(v["meta"]["tags"].is_object());
    }
}
