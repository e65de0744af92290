//! The bound on signals waiting for their pool connection. A `tcp`, `udp` or `verify`
//! signal may name an id that has not arrived yet; it then waits up to
//! `NP_POOL_GET_TIMEOUT`, polling the shard. A peer that names ids that never come
//! would otherwise hold one task (and one warning line) per signal: here at most
//! [`MAX_WAITING_SIGNALS`] wait per worker, the rest are dropped, and both the drops and
//! the timeouts are summarised (`logging::Flood`) instead of logged one line each.

use std::cell::{Cell, RefCell};
use std::fmt::Display;
use std::rc::Rc;
use std::time::{Duration, Instant};

use super::pool::Pooled;
use super::TunnelCtx;
use crate::bus::Event;
use crate::dataplane::host::WorkerCtx;
use crate::logging::{Flood, Hit, FLOOD_REPORT_EVERY};
use crate::proto::PoolId;

/// Signals that may wait for a pool connection at once on one worker. Between two honest
/// peers a signal names a connection the other end already holds, or one a few
/// milliseconds away, so this many waiting means a flood.
pub const MAX_WAITING_SIGNALS: usize = 256;

/// One worker's waiting signals and the counters of their drops and timeouts.
pub(super) struct Waits {
    waiting: Cell<usize>,
    dropped: RefCell<Flood>,
    timed_out: RefCell<Flood>,
    summary_planned: Cell<bool>,
}

impl Waits {
    pub(super) fn new() -> Waits {
        Waits {
            waiting: Cell::new(0),
            dropped: RefCell::new(Flood::new(FLOOD_REPORT_EVERY)),
            timed_out: RefCell::new(Flood::new(FLOOD_REPORT_EVERY)),
            summary_planned: Cell::new(false),
        }
    }
}

/// Leaves the waiting count when the wait ends, however it ends.
struct Waiting<'a>(&'a Cell<usize>);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// What a signal that names a pool connection is for.
pub(super) enum Named<'a> {
    /// A `tcp`/`udp` session for this user (the escaped words for the log); a connection
    /// that never comes is a pool miss (the flush rule counts those).
    Session(&'a dyn Display),
    /// A `verify`: a connection that never comes is Go's verify race, only logged.
    Verify,
}

/// The pool connection `id` that a signal names: at once if it is here, else after
/// waiting up to `NP_POOL_GET_TIMEOUT` if fewer than [`MAX_WAITING_SIGNALS`] signals wait
/// already. `None` after counting why.
pub(super) async fn pooled_for_signal(
    id: PoolId,
    named: Named<'_>,
    ctx: &Rc<WorkerCtx>,
    t: &Rc<TunnelCtx>,
) -> Option<Pooled> {
    if let Some(p) = t.shard.take_id(id) {
        return Some(p);
    }
    let waits = &t.waits;
    if waits.waiting.get() >= MAX_WAITING_SIGNALS {
        if waits.dropped.borrow_mut().hit(Instant::now()) == Hit::Log {
            log::warn!(
                "signal for pool connection {id} dropped: {MAX_WAITING_SIGNALS} signals \
                 already wait for theirs (more are counted)"
            );
        }
        plan_summary(ctx, t);
        return None;
    }
    waits.waiting.set(waits.waiting.get() + 1);
    let _waiting = Waiting(&waits.waiting);
    let found = t.shard.wait_id(id, t.spec.pool_get_timeout).await;
    if found.is_none() {
        let log_it = waits.timed_out.borrow_mut().hit(Instant::now()) == Hit::Log;
        match named {
            Named::Session(who) => {
                if log_it {
                    log::warn!("request timeout: pool connection {id} for {who} not found");
                }
                t.spec.shared.report(Event::PoolMiss);
            }
            Named::Verify if log_it => {
                log::warn!("verify: pool connection {id} not found (peer took it too); skipped")
            }
            Named::Verify => {}
        }
        plan_summary(ctx, t);
    }
    found
}

/// Print the summaries once their interval has passed (one task per worker at a time).
fn plan_summary(ctx: &Rc<WorkerCtx>, t: &Rc<TunnelCtx>) {
    if t.waits.summary_planned.replace(true) {
        return;
    }
    let (ctx2, t) = (Rc::clone(ctx), Rc::clone(t));
    ctx.spawn(async move {
        let wait = FLOOD_REPORT_EVERY + Duration::from_millis(10);
        monoio::select! {
            _ = monoio::time::sleep(wait) => {}
            _ = ctx2.closing.wait() => {}
        }
        t.waits.summary_planned.set(false);
        print_summaries(&t.waits);
    });
}

fn print_summaries(waits: &Waits) {
    let now = Instant::now();
    let secs = FLOOD_REPORT_EVERY.as_secs();
    if let Some(n) = waits.dropped.borrow_mut().summary_due(now) {
        log::warn!(
            "{n} signals dropped in the last {secs} s: {MAX_WAITING_SIGNALS} already waited \
             for their pool connections"
        );
    }
    if let Some(n) = waits.timed_out.borrow_mut().summary_due(now) {
        log::warn!("request timeout: {n} signals found no pool connection in the last {secs} s");
    }
}
