//! Every task a worker spawns, so the worker can end them all before its runtime ends.
//!
//! Why this exists: monoio 0.2.4's `Runtime` has no `Drop` that drops its tasks. A task
//! still pending when `block_on` returns is leaked with everything it owns — listeners,
//! pool connections, and the io_uring ring itself (each pending op holds the driver) — so
//! a tunnel that restarted kept its old listeners bound ("address in use" forever) and its
//! old pool connections in CLOSE-WAIT. A worker therefore spawns only through
//! [`TaskSet::spawn`], and at close cancels what is left and waits until the count is zero.
//!
//! Cost per task: one slot in a free-list table (no allocation once warm) and, per poll, a
//! `will_wake` comparison. Cancelling wakes every live task; each then completes at its next
//! poll, dropping its future (and so its sockets) inside the runtime.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// The live tasks of one worker.
#[derive(Default)]
pub struct TaskSet {
    wakers: RefCell<Vec<Option<Waker>>>,
    free: RefCell<Vec<usize>>,
    live: Cell<usize>,
    cancelled: Cell<bool>,
}

/// Frees the task's slot when its future completes or is dropped.
struct Slot {
    set: Rc<TaskSet>,
    index: usize,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(w) = self.set.wakers.borrow_mut().get_mut(self.index) {
            *w = None;
        }
        self.set.free.borrow_mut().push(self.index);
        self.set.live.set(self.set.live.get() - 1);
    }
}

pin_project_lite::pin_project! {
    /// A spawned task: `fut`, polled until it ends or the set is cancelled. A struct rather than
    /// an async block around `fut`: such a block keeps both the captured future and the copy it
    /// pins (rust-lang/rust#62958), so every task's allocation was twice its future and the
    /// future was copied once more at its first poll.
    struct Member<F> {
        // Dropped first (fields drop in order): the future's sockets close inside the
        // runtime (monoio drops a task's future in the poll that completes it), then the
        // slot is freed.
        #[pin]
        fut: F,
        slot: Slot,
    }
}

impl<F: Future<Output = ()>> Future for Member<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let set = &this.slot.set;
        if set.cancelled.get() {
            return Poll::Ready(());
        }
        if let Some(w) = set.wakers.borrow_mut().get_mut(this.slot.index) {
            match w {
                Some(old) if old.will_wake(cx.waker()) => {}
                _ => *w = Some(cx.waker().clone()),
            }
        }
        this.fut.poll(cx)
    }
}

impl TaskSet {
    /// Spawn `fut` on the current runtime as a task this set can cancel. After
    /// [`TaskSet::cancel_all`] a spawn is refused (the future is dropped at once).
    pub fn spawn<F>(self: &Rc<Self>, fut: F)
    where
        F: Future<Output = ()> + 'static,
    {
        if self.cancelled.get() {
            return;
        }
        monoio::spawn(self.member(fut));
    }

    /// `fut` as a task of this set (its slot taken).
    fn member<F>(self: &Rc<Self>, fut: F) -> Member<F> {
        Member {
            fut,
            slot: self.register(),
        }
    }

    fn register(self: &Rc<Self>) -> Slot {
        let mut wakers = self.wakers.borrow_mut();
        let index = match self.free.borrow_mut().pop() {
            Some(i) => i,
            None => {
                wakers.push(None);
                wakers.len() - 1
            }
        };
        self.live.set(self.live.get() + 1);
        Slot {
            set: Rc::clone(self),
            index,
        }
    }

    /// Tasks spawned and not yet finished.
    pub fn live(&self) -> usize {
        self.live.get()
    }

    /// End every live task at its next poll (each is woken now) and refuse new ones.
    pub fn cancel_all(&self) {
        self.cancelled.set(true);
        let wakers: Vec<Waker> = self
            .wakers
            .borrow_mut()
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for w in wakers {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A task costs its future plus the slot: the wrapper must not hold a second copy of the
    /// future (as an async block pinning a captured one does), which doubled the memory of
    /// every held connection.
    #[test]
    fn a_task_is_its_future_plus_a_slot_not_twice_the_future() {
        async fn holds_a_kib() {
            let buf = [7u8; 1024];
            std::future::ready(()).await;
            std::hint::black_box(&buf);
        }
        let set = Rc::new(TaskSet::default());
        let fut = holds_a_kib();
        let alone = std::mem::size_of_val(&fut);
        let task = set.member(fut);
        let wrapped = std::mem::size_of_val(&task);
        assert!(
            // The slot, and alignment padding after the future's odd size.
            wrapped <= alone + std::mem::size_of::<Slot>() + std::mem::align_of::<Slot>(),
            "a task of {alone} bytes takes {wrapped}"
        );
        drop(task);
        assert_eq!(set.live(), 0, "dropping the task frees its slot");
    }

    #[test]
    fn cancel_ends_pending_tasks_and_drops_what_they_own() {
        let dropped = Rc::new(Cell::new(0));
        struct Owned(Rc<Cell<u32>>);
        impl Drop for Owned {
            fn drop(&mut self) {
                self.0.set(self.0.get() + 1);
            }
        }
        let live_after = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()
            .map(|mut rt| {
                rt.block_on(async {
                    let set = Rc::new(TaskSet::default());
                    for _ in 0..3 {
                        let owned = Owned(Rc::clone(&dropped));
                        set.spawn(async move {
                            monoio::time::sleep(Duration::from_secs(3600)).await;
                            drop(owned);
                        });
                    }
                    // One that finishes by itself frees its slot for the next spawn.
                    set.spawn(async {});
                    monoio::time::sleep(Duration::from_millis(5)).await;
                    assert_eq!(set.live(), 3);
                    set.cancel_all();
                    set.spawn(async { monoio::time::sleep(Duration::from_secs(3600)).await });
                    for _ in 0..100 {
                        if set.live() == 0 {
                            break;
                        }
                        monoio::time::sleep(Duration::from_millis(1)).await;
                    }
                    set.live()
                })
            });
        assert_eq!(live_after.ok(), Some(0));
        assert_eq!(dropped.get(), 3);
    }
}
