//! The live sessions of one worker, by end (socket or stream), so a drain deadline can close them all.
//!
//! Closing an fd does not cancel io_uring operations that hold it, so teardown shuts each
//! socket down instead, which completes every pending poll, read and splice on it.

use std::cell::RefCell;
use std::rc::Rc;

use super::end::End;

/// Slot table of live sessions' sockets; freed slots are reused (no allocation per session
/// once the table has grown to the worker's peak).
#[derive(Default)]
pub struct SessionTable {
    slots: RefCell<Vec<Option<[End; 2]>>>,
    free: RefCell<Vec<usize>>,
}

/// Keeps a session registered; unregisters on drop.
pub struct SessionEntry {
    table: Rc<SessionTable>,
    slot: usize,
}

impl SessionTable {
    /// Register a session's two ends (the same one twice for a one-socket session). Hold
    /// the entry in the task that owns the sockets, so it drops in the same step as they
    /// do (`SocketFd`'s contract).
    pub fn register(self: &Rc<Self>, ends: [End; 2]) -> SessionEntry {
        let mut slots = self.slots.borrow_mut();
        let slot = match self.free.borrow_mut().pop() {
            Some(i) => {
                slots[i] = Some(ends);
                i
            }
            None => {
                slots.push(Some(ends));
                slots.len() - 1
            }
        };
        SessionEntry {
            table: Rc::clone(self),
            slot,
        }
    }

    /// Shut down every registered end (both directions).
    pub fn shutdown_all(&self) {
        for ends in self.slots.borrow().iter().flatten() {
            for end in ends {
                end.shutdown_both();
            }
        }
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.slots.borrow().len() - self.free.borrow().len()
    }
}

impl Drop for SessionEntry {
    fn drop(&mut self) {
        if let Some(s) = self.table.slots.borrow_mut().get_mut(self.slot) {
            *s = None;
        }
        self.table.free.borrow_mut().push(self.slot);
    }
}
