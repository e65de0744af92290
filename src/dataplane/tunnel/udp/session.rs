//! The write side of one user UDP session on the accepting side: its pool connection's
//! writer and the datagrams waiting for it (a pending session's first datagrams, or those
//! handed over by another worker), written strictly in arrival order.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Instant;

use super::frame::DatagramWriter;
use crate::dataplane::admit::udp_meters;
use crate::dataplane::end::End;
use crate::dataplane::host::WorkerCtx;

/// Datagrams a flow holds while it waits for its pool connection (or a busy writer).
const PENDING_DATAGRAMS: usize = 64;

/// One user's flow on this worker.
pub(super) struct UserSession {
    pub(super) link: RefCell<Link>,
    pub(super) last_active: Rc<Cell<Instant>>,
}

/// The write side of a session: the writer is here when nobody writes; `queue` holds
/// datagrams that could not be written at once, in arrival order.
#[derive(Default)]
pub(super) struct Link {
    writer: Option<DatagramWriter>,
    pub(super) queue: VecDeque<Vec<u8>>,
    pub(super) end: Option<End>,
    pub(super) closed: bool,
}

impl UserSession {
    /// A session with no pool connection yet.
    pub(super) fn new() -> Rc<UserSession> {
        Rc::new(UserSession {
            link: RefCell::default(),
            last_active: Rc::new(Cell::new(Instant::now())),
        })
    }
}

/// Write a datagram of the receive buffer straight to the pool connection when the
/// session's writer is free and nothing is queued (no copy); queue a copy otherwise.
pub(super) async fn send_now(
    session: &Rc<UserSession>,
    buf: Vec<u8>,
    n: usize,
    ctx: &Rc<WorkerCtx>,
) -> Vec<u8> {
    session.last_active.set(Instant::now());
    let writer = {
        let mut link = session.link.borrow_mut();
        if link.queue.is_empty() {
            link.writer.take()
        } else {
            None
        }
    };
    let Some(mut w) = writer else {
        enqueue(session, buf[..n].to_vec(), ctx);
        return buf;
    };
    let (rx, _) = udp_meters(ctx);
    rx.pace(n).await;
    let (res, buf) = w.send(buf, n).await;
    match res {
        Ok(_) => {
            rx.count(n);
            give_back(session, w, ctx);
        }
        Err(e) => {
            log::debug!("udp pool write failed: {e}");
            close(session);
        }
    }
    buf
}

/// Queue a datagram; a free writer starts draining the queue at once.
pub(super) fn enqueue(session: &Rc<UserSession>, datagram: Vec<u8>, ctx: &Rc<WorkerCtx>) {
    let writer = {
        let mut link = session.link.borrow_mut();
        if link.closed {
            return;
        }
        if link.queue.len() >= PENDING_DATAGRAMS {
            log::debug!("udp session queue full: datagram dropped");
            return;
        }
        link.queue.push_back(datagram);
        link.writer.take()
    };
    if let Some(w) = writer {
        ctx.spawn(drain(Rc::clone(session), w, Rc::clone(ctx)));
    }
}

/// Return the writer to the session, or keep it busy with what was queued meanwhile.
pub(super) fn give_back(session: &Rc<UserSession>, w: DatagramWriter, ctx: &Rc<WorkerCtx>) {
    let mut link = session.link.borrow_mut();
    if link.queue.is_empty() {
        link.writer = Some(w);
    } else {
        drop(link);
        ctx.spawn(drain(Rc::clone(session), w, Rc::clone(ctx)));
    }
}

async fn drain(session: Rc<UserSession>, mut w: DatagramWriter, ctx: Rc<WorkerCtx>) {
    let (rx, _) = udp_meters(&ctx);
    loop {
        let next = session.link.borrow_mut().queue.pop_front();
        let Some(datagram) = next else {
            session.link.borrow_mut().writer = Some(w);
            return;
        };
        let n = datagram.len();
        rx.pace(n).await;
        if let Err(e) = w.send_owned(datagram).await {
            log::debug!("udp pool write failed: {e}");
            close(&session);
            return;
        }
        rx.count(n);
    }
}

/// End the session: nothing more is queued or written, and its pool connection shuts.
/// Only the first call shuts it down: a later one may come after both halves of the
/// connection dropped (a failed write drops the writer, then the reader ends), when the
/// number may already name another socket (`SocketFd`'s contract).
pub(super) fn close(session: &UserSession) {
    let mut link = session.link.borrow_mut();
    link.closed = true;
    link.queue.clear();
    if let Some(end) = link.end.take() {
        end.shutdown_both();
    }
}
