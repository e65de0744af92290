//! Client: which worker holds each idle pool connection (see [`super::route`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::proto::PoolId;

/// Client: which worker holds each idle pool connection (a Go server's ids carry no
/// worker). The worker that read an id records it; whoever routes the signal naming it
/// (the control-channel reader, or the control thread for a signal that came before its
/// id) takes it; a worker that uses or closes a connection itself forgets it. One
/// uncontended lock per pool connection replaces two thread hand-offs per session.
#[derive(Debug, Default)]
pub struct ClientOwners {
    map: Mutex<HashMap<PoolId, usize>>,
    /// Set by the first record: a server never records, so it never takes the lock.
    in_use: AtomicBool,
}

impl ClientOwners {
    /// Worker `worker` holds pool connection `id`.
    pub fn record(&self, id: PoolId, worker: usize) {
        self.in_use.store(true, Ordering::Relaxed);
        if let Ok(mut map) = self.map.lock() {
            map.insert(id, worker);
        }
    }

    /// The owner of `id`, forgotten on the way.
    pub fn take(&self, id: PoolId) -> Option<usize> {
        if !self.in_use.load(Ordering::Relaxed) {
            return None;
        }
        self.map.lock().ok()?.remove(&id)
    }

    /// `id` was used or closed by its owner: no signal will name it for a session.
    pub fn forget(&self, id: PoolId) {
        if self.in_use.load(Ordering::Relaxed) {
            if let Ok(mut map) = self.map.lock() {
                map.remove(&id);
            }
        }
    }

    /// How many are recorded.
    pub fn len(&self) -> usize {
        self.map.lock().map_or(0, |m| m.len())
    }

    /// Whether none is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
