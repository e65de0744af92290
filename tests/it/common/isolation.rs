//! Keeps tests that run nodepass inside this process apart from tests that start it as a
//! child process, now that all of them share one test process.
//!
//! Why: a socket that io_uring accepts has no close-on-exec flag (monoio's accept op
//! passes no flags), so every child spawned while an in-process forwarder or master holds
//! such a socket inherits a copy. The child then shows a foreign socket (in CLOSE-WAIT once
//! the test closes its end) to the fd and CLOSE-WAIT checks of `tunnel_recovery` and
//! `tunnel_udp_faults`, and the in-process side's close sends no FIN while the child's
//! copy lives. An in-process master spawns children itself, so in-process forwarders and
//! in-process masters are kept apart too.
//!
//! A test enters a [`Room`] through the helpers ([`super::Forwarder::start`],
//! [`super::master::TestMaster::start`], [`super::NodepassProcess::start`],
//! [`super::cli::run_nodepass`]) and stays in it while their value lives. Any number of
//! tests may share a room; a test entering another room waits until the current one is
//! empty. A test must therefore not hold values of two rooms at once (it would wait for
//! itself); none does.

use std::sync::{Condvar, Mutex, PoisonError};

/// What kind of nodepass a test runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Room {
    /// Forwarders started through the library in this process.
    InProcessRelay,
    /// Masters started through the library in this process (they spawn instances).
    InProcessMaster,
    /// The real binary as child processes of this one.
    Children,
}

struct State {
    room: Option<Room>,
    inside: usize,
}

static STATE: Mutex<State> = Mutex::new(State {
    room: None,
    inside: 0,
});
static EMPTIED: Condvar = Condvar::new();

/// Presence in a room; leaving it when dropped.
pub struct Guard(Room);

/// Enter `room`, waiting while another room is in use.
pub fn enter(room: Room) -> Guard {
    let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
    while state.room.is_some_and(|current| current != room) {
        state = EMPTIED.wait(state).unwrap_or_else(PoisonError::into_inner);
    }
    state.room = Some(room);
    state.inside += 1;
    Guard(room)
}

impl Drop for Guard {
    fn drop(&mut self) {
        let mut state = STATE.lock().unwrap_or_else(PoisonError::into_inner);
        debug_assert_eq!(state.room, Some(self.0));
        state.inside -= 1;
        if state.inside == 0 {
            state.room = None;
            EMPTIED.notify_all();
        }
    }
}
