//! Connections that have not proved themselves yet (a tunnel handshake attempt, a pool
//! connection before its key proof, a master connection before its first request), on one
//! thread: capped per source IP and in total. A newcomer over a cap is let in and the
//! *oldest* waiting connection of its IP (or of everyone, for the total cap) is evicted:
//! a flood of silent or slow connections then only ever evicts itself, while a real peer,
//! which proves itself within milliseconds, is never the oldest. Evictions are counted and
//! reported in one WARN line per [`REPORT_EVERY`], not one line each.
//!
//! Only connections whose task has started are evicted while there are any: an accept loop
//! that drains a full backlog in one go (epoll) would otherwise evict a real peer admitted
//! early in the batch before its task ever read the request that is already waiting.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::IpAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::wake::LocalFlag;

/// At most one summary line per this interval.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);

/// One thread's waiting connections.
pub struct Crowd {
    /// What the summary line calls them ("tunnel port", "master API").
    what: &'static str,
    /// Cap on waiting connections of one IP (a caller may pass a larger one, [`Crowd::admit_with`]).
    per_ip: usize,
    /// Cap on all waiting connections.
    total: usize,
    inner: RefCell<Inner>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    /// Waiting connections, oldest first.
    order: BTreeMap<u64, (IpAddr, Rc<Slot>)>,
    per_ip: HashMap<IpAddr, usize>,
    evicted: u64,
    last_report: Option<Instant>,
}

/// A connection's place in the crowd; leaving it (drop) means the connection proved itself
/// or ended.
pub struct Ticket {
    crowd: Rc<Crowd>,
    id: u64,
    ip: IpAddr,
}

/// One waiting connection's state as the crowd sees it.
#[derive(Default)]
struct Slot {
    /// Raised when the connection is evicted.
    evicted: LocalFlag,
    /// Its task has run (it had its chance to read what the peer sent).
    started: Cell<bool>,
}

/// Resolves when the connection is evicted; race the connection's work against it.
pub struct Evicted(Rc<Slot>);

impl Evicted {
    /// Run `work` unless the connection is evicted first (`None` then).
    pub async fn guard<F: Future>(self, work: F) -> Option<F::Output> {
        self.0.started.set(true);
        monoio::select! {
            out = work => Some(out),
            _ = self.0.evicted.wait() => None,
        }
    }
}

impl Crowd {
    /// A crowd capped at `per_ip` connections of one IP and `total` in all.
    pub fn new(what: &'static str, per_ip: usize, total: usize) -> Rc<Crowd> {
        Rc::new(Crowd {
            what,
            per_ip: per_ip.max(1),
            total: total.max(1),
            inner: RefCell::new(Inner::default()),
        })
    }

    /// Admit a connection from `ip` under the usual per-IP cap.
    pub fn admit(self: &Rc<Self>, ip: IpAddr) -> (Ticket, Evicted) {
        self.admit_with(ip, self.per_ip)
    }

    /// Admit a connection from `ip` whose IP may have `per_ip` waiting connections (the
    /// tunnel client's IP while its pool fills), evicting the oldest over a cap.
    pub fn admit_with(self: &Rc<Self>, ip: IpAddr, per_ip: usize) -> (Ticket, Evicted) {
        let mut inner = self.inner.borrow_mut();
        if inner.per_ip.get(&ip).copied().unwrap_or(0) >= per_ip.max(1) {
            let oldest = inner.oldest(|i| i == ip);
            inner.evict(oldest);
        }
        if inner.order.len() >= self.total {
            let oldest = inner.oldest(|_| true);
            inner.evict(oldest);
        }
        let id = inner.next;
        inner.next += 1;
        let flag = Rc::new(Slot::default());
        inner.order.insert(id, (ip, Rc::clone(&flag)));
        *inner.per_ip.entry(ip).or_insert(0) += 1;
        self.report(&mut inner);
        let ticket = Ticket {
            crowd: Rc::clone(self),
            id,
            ip,
        };
        (ticket, Evicted(flag))
    }

    /// Number of waiting connections.
    pub fn len(&self) -> usize {
        self.inner.borrow().order.len()
    }

    /// Whether no connection is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn report(&self, inner: &mut Inner) {
        if inner.evicted == 0 {
            return;
        }
        let due = inner
            .last_report
            .map_or(true, |at| at.elapsed() >= REPORT_EVERY);
        if due {
            log::warn!(
                "{}: {} connections that had not proved themselves closed over the caps \
                 ({} per source IP, {} in all, on this thread)",
                self.what,
                inner.evicted,
                self.per_ip,
                self.total
            );
            inner.evicted = 0;
            inner.last_report = Some(Instant::now());
        }
    }
}

impl Inner {
    /// The oldest waiting connection whose IP matches, preferring one whose task started.
    fn oldest(&self, matches: impl Fn(IpAddr) -> bool) -> Option<u64> {
        let mut first = None;
        for (id, (ip, slot)) in &self.order {
            if !matches(*ip) {
                continue;
            }
            if slot.started.get() {
                return Some(*id);
            }
            first = first.or(Some(*id));
        }
        first
    }

    fn evict(&mut self, id: Option<u64>) {
        let Some((ip, flag)) = id.and_then(|id| self.order.remove(&id)) else {
            return;
        };
        self.forget(ip);
        self.evicted += 1;
        flag.evicted.raise();
    }

    fn forget(&mut self, ip: IpAddr) {
        if let Some(n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut inner = self.crowd.inner.borrow_mut();
        if inner.order.remove(&self.id).is_some() {
            inner.forget(self.ip);
        }
    }
}

/// Counts refusals and reports them in one WARN line per [`REPORT_EVERY`].
#[derive(Default)]
pub struct RefusalLog {
    count: Cell<u64>,
    last: Cell<Option<Instant>>,
}

impl RefusalLog {
    /// Count one refusal; say `what` with the count if the interval has passed.
    pub fn note(&self, what: impl FnOnce(u64) -> String) {
        self.count.set(self.count.get() + 1);
        if self
            .last
            .get()
            .map_or(true, |at| at.elapsed() >= REPORT_EVERY)
        {
            log::warn!("{}", what(self.count.get()));
            self.count.set(0);
            self.last.set(Some(Instant::now()));
        }
    }
}

/// Individual WARN lines up to a budget per [`REPORT_EVERY`], then a count: a flood of bad
/// connections cannot flood the log, while the first few (a wrong-key client) still show
/// each peer and cause.
#[derive(Default)]
pub struct WarnBudget {
    window: Cell<Option<Instant>>,
    used: Cell<u32>,
    suppressed: Cell<u64>,
}

/// Lines a [`WarnBudget`] lets through per interval.
pub const WARN_BUDGET: u32 = 20;

impl WarnBudget {
    /// Log `line()` at WARN if the budget allows, else count it.
    pub fn warn(&self, line: impl FnOnce() -> String) {
        let fresh = self
            .window
            .get()
            .map_or(true, |at| at.elapsed() >= REPORT_EVERY);
        if fresh {
            if self.suppressed.get() > 0 {
                log::warn!(
                    "{} more refusals like the above in the last {REPORT_EVERY:?} (not logged \
                     one by one)",
                    self.suppressed.get()
                );
            }
            self.window.set(Some(Instant::now()));
            self.used.set(0);
            self.suppressed.set(0);
        }
        if self.used.get() < WARN_BUDGET {
            self.used.set(self.used.get() + 1);
            log::warn!("{}", line());
        } else {
            self.suppressed.set(self.suppressed.get() + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn over_the_per_ip_cap_the_oldest_of_that_ip_is_evicted() {
        let crowd = Crowd::new("test", 2, 10);
        let (a, ea) = crowd.admit(ip(1));
        let (_b, eb) = crowd.admit(ip(1));
        let (_other, eo) = crowd.admit(ip(2));
        let (_c, ec) = crowd.admit(ip(1));
        assert!(ea.0.evicted.is_raised());
        assert!(
            !eb.0.evicted.is_raised() && !ec.0.evicted.is_raised() && !eo.0.evicted.is_raised()
        );
        assert_eq!(crowd.len(), 3);
        drop(a);
        assert_eq!(crowd.len(), 3);
    }

    #[test]
    fn over_the_total_cap_the_oldest_of_all_is_evicted_and_leaving_frees_places() {
        let crowd = Crowd::new("test", 10, 2);
        let (_a, ea) = crowd.admit(ip(1));
        let (b, eb) = crowd.admit(ip(2));
        drop(b);
        let (_c, ec) = crowd.admit(ip(3));
        assert!(!ea.0.evicted.is_raised() && !eb.0.evicted.is_raised());
        let (_d, _) = crowd.admit(ip(4));
        assert!(ea.0.evicted.is_raised() && !ec.0.evicted.is_raised());
        assert_eq!(crowd.len(), 2);
    }

    #[test]
    fn a_connection_whose_task_started_is_evicted_before_one_not_yet_served() {
        let crowd = Crowd::new("test", 2, 10);
        let (_a, ea) = crowd.admit(ip(1));
        let (_b, eb) = crowd.admit(ip(1));
        eb.0.started.set(true);
        let (_c, _) = crowd.admit(ip(1));
        assert!(!ea.0.evicted.is_raised() && eb.0.evicted.is_raised());
    }

    #[test]
    fn a_warn_budget_lets_the_first_lines_through_and_counts_the_rest() {
        let budget = WarnBudget::default();
        for _ in 0..WARN_BUDGET + 5 {
            budget.warn(|| String::from("refused"));
        }
        assert_eq!(budget.used.get(), WARN_BUDGET);
        assert_eq!(budget.suppressed.get(), 5);
    }

    #[test]
    fn a_larger_cap_for_one_ip_lets_its_burst_in() {
        let crowd = Crowd::new("test", 1, 100);
        let tickets: Vec<_> = (0..50).map(|_| crowd.admit_with(ip(7), 64)).collect();
        assert!(tickets.iter().all(|(_, e)| !e.0.evicted.is_raised()));
        assert_eq!(crowd.len(), 50);
    }
}
