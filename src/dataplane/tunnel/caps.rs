//! Caps on the server's tunnel port: how many connections that have not proved
//! themselves may wait per source IP and in all (each worker holds its share of the
//! process-wide numbers), and the control channel's place held by a candidate.

use std::rc::Rc;
use std::sync::atomic::Ordering;

use super::{TunnelCtx, TunnelSide};
use crate::crowd::Crowd;

/// Waiting (not yet proved) connections of one source IP, process-wide: far above what a
/// real client has waiting before its handshake (one), small enough that a flood from one
/// host holds few descriptors.
pub const UNPROVED_PER_IP: usize = 256;
/// Waiting connections of all sources, process-wide (plus `max` once a run's client is
/// known, for its pool burst).
pub const UNPROVED_TOTAL: usize = 2048;

/// This worker's share of the caps (SO_REUSEPORT spreads connections over the workers).
fn share(cap: usize, workers: usize) -> usize {
    cap.div_ceil(workers.max(1))
}

/// The crowd of a server worker's tunnel port.
pub(super) fn crowd(spec: &super::TunnelSpec) -> Rc<Crowd> {
    let max = match &spec.side {
        TunnelSide::Server { reply, .. } => reply.max as usize,
        TunnelSide::Client { .. } => 0,
    };
    Crowd::new(
        "tunnel port",
        share(UNPROVED_PER_IP, spec.workers),
        share(UNPROVED_TOTAL + max, spec.workers),
    )
}

impl TunnelCtx {
    /// The per-IP cap for the tunnel client's IP: its whole pool (`max`) may arrive in
    /// one burst after the handshake, each connection waiting until it proved the key,
    /// so `max` of them are expected on top of the usual cap.
    pub(super) fn client_ip_cap(&self) -> usize {
        let max = match &self.spec.side {
            TunnelSide::Server { reply, .. } => reply.max as usize,
            TunnelSide::Client { .. } => 0,
        };
        share(UNPROVED_PER_IP + max, self.spec.workers)
    }
}

/// Holds the control channel's place for a candidate; gives it back when dropped without
/// [`ControlClaim::keep`] (the candidate failed, or was evicted from the crowd mid-way).
pub(super) struct ControlClaim<'a> {
    /// The flag to lower again, until kept.
    pub(super) taken: Option<&'a std::sync::atomic::AtomicBool>,
}

impl ControlClaim<'_> {
    /// The candidate became the control channel: keep the place.
    pub(super) fn keep(mut self) {
        self.taken = None;
    }
}

impl Drop for ControlClaim<'_> {
    fn drop(&mut self) {
        if let Some(taken) = self.taken {
            taken.store(false, Ordering::Release);
        }
    }
}
