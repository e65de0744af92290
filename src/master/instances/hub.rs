//! The instance event hub behind `/events`: one bounded queue per subscriber, events
//! framed once and fanned out without ever waiting on a subscriber.
//!
//! Framing is Go's: `event: instance\ndata: <one-line JSON>\n\n`, with `type`, `time`
//! (RFC 3339), `instance` and `logs` always present. A subscriber whose queue is full is
//! dropped (its client reconnects and gets a fresh `initial` snapshot) — never waited on.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Frames a subscriber may have queued before it counts as too slow.
pub const QUEUE_CAP: usize = 1024;

/// One `/events` stream.
#[derive(Default)]
pub struct Subscriber {
    queue: RefCell<VecDeque<Rc<str>>>,
    closing: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Subscriber {
    /// The frames queued so far; `Ready(None)` once the stream must end (after draining
    /// what was queued before a shutdown, or at once if the subscriber was dropped as too
    /// slow).
    pub fn poll_next(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<Rc<str>>>> {
        let mut q = self.queue.borrow_mut();
        if !q.is_empty() {
            return Poll::Ready(Some(q.drain(..).collect()));
        }
        if self.closing.get() {
            return Poll::Ready(None);
        }
        *self.waker.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    }

    /// End the stream once the queue is drained.
    pub fn close(&self) {
        self.closing.set(true);
        self.wake();
    }

    /// True once closed.
    pub fn is_closed(&self) -> bool {
        self.closing.get()
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    fn push(&self, frame: Rc<str>) -> bool {
        let mut q = self.queue.borrow_mut();
        if q.len() >= QUEUE_CAP {
            q.clear();
            drop(q);
            self.close();
            return false;
        }
        q.push_back(frame);
        drop(q);
        self.wake();
        true
    }
}

/// All live subscribers.
#[derive(Default)]
pub struct Hub {
    subs: RefCell<Vec<Rc<Subscriber>>>,
}

impl Hub {
    /// Register a subscriber whose queue starts with `initial` frames (taken in the same
    /// turn of the runtime, so no event is lost or duplicated between snapshot and stream).
    pub fn subscribe(&self, initial: Vec<String>) -> Rc<Subscriber> {
        let sub = Rc::new(Subscriber::default());
        sub.queue
            .borrow_mut()
            .push_back(Rc::from("retry: 3000\n\n"));
        for f in initial {
            sub.queue.borrow_mut().push_back(Rc::from(f));
        }
        self.subs.borrow_mut().push(sub.clone());
        sub
    }

    /// Send an event to every subscriber.
    pub fn publish(&self, kind: &str, instance: Option<Value>, logs: &str) {
        let frame: Rc<str> = Rc::from(frame(kind, instance, logs));
        self.subs
            .borrow_mut()
            .retain(|s| !s.is_closed() && s.push(frame.clone()));
    }

    /// Send `shutdown` to every subscriber and end their streams.
    pub fn shutdown_all(&self) {
        let frame: Rc<str> = Rc::from(frame("shutdown", None, ""));
        for s in self.subs.borrow_mut().drain(..) {
            s.push(frame.clone());
            s.close();
        }
    }

    /// Live subscriber count.
    pub fn count(&self) -> usize {
        self.subs.borrow_mut().retain(|s| !s.is_closed());
        self.subs.borrow().len()
    }
}

/// One framed event.
pub fn frame(kind: &str, instance: Option<Value>, logs: &str) -> String {
    let ev = json!({"type": kind, "time": rfc3339_now(), "instance": instance.unwrap_or(Value::Null), "logs": logs});
    format!("event: instance\ndata: {ev}\n\n")
}

/// Now as RFC 3339 in UTC with milliseconds, e.g. `2026-01-02T08:37:20.123Z`.
pub fn rfc3339_now() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs() as i64, d.subsec_millis())
}

fn rfc3339(secs: i64, millis: u32) -> String {
    let t = crate::logging::utc_fields(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_767_343_040, 123), "2026-01-02T08:37:20.123Z");
        assert_eq!(rfc3339(951_782_400, 5), "2000-02-29T00:00:00.005Z");
    }

    #[test]
    fn frames_are_one_json_line_with_every_key() {
        let f = frame("log", Some(json!({"id": "x"})), "a\nb");
        let data = f
            .strip_prefix("event: instance\ndata: ")
            .unwrap()
            .strip_suffix("\n\n")
            .unwrap();
        assert!(!data.contains('\n'));
        let v: Value = serde_json::from_str(data).unwrap();
        assert_eq!(v["logs"], "a\nb");
        assert!(v["time"].is_string() && v["type"] == "log");
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_dropped_not_waited_on() {
        let hub = Hub::default();
        let sub = hub.subscribe(vec![]);
        for _ in 0..QUEUE_CAP + 5 {
            hub.publish("update", None, "");
        }
        assert!(sub.is_closed());
        assert_eq!(hub.count(), 0);
    }
}
