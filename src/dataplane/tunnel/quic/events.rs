//! What a connection's events mean for the endpoint: wakers, arrivals, gone streams, and
//! Go's words for a connection's end.

use std::collections::VecDeque;

use quinn_proto::{ConnectionError, ConnectionHandle, Dir, Event, StreamEvent, VarInt};

use super::{Arrival, Conn, Slot};

/// Go's words for a connection's end (quic-go's error strings).
pub(super) fn describe(e: &ConnectionError, local_reason: Option<&str>) -> String {
    match e {
        ConnectionError::ApplicationClosed(c) => format!(
            "Application error {:#x} (remote): {}",
            c.error_code.into_inner(),
            String::from_utf8_lossy(&c.reason)
        ),
        ConnectionError::LocallyClosed => format!(
            "Application error 0x0 (local): {}",
            local_reason.unwrap_or("pool closed")
        ),
        ConnectionError::TimedOut => "timeout: no recent network activity".to_owned(),
        other => other.to_string(),
    }
}

/// One application event of connection `c`; `true` when a stream or the connection
/// ended under us.
pub(super) fn on_event(
    c: &mut Conn,
    ch: ConnectionHandle,
    ev: Event,
    arrivals: &mut VecDeque<Arrival>,
) -> bool {
    match ev {
        Event::Connected => {
            c.connected = true;
            if c.q.side().is_server() {
                arrivals.push_back(Arrival::Connected(ch, c.q.remote_address()));
            }
            c.wake_all();
            false
        }
        Event::ConnectionLost { reason } => {
            if c.lost.is_none() {
                c.lost = Some(describe(&reason, None));
            }
            log::debug!(
                "QUIC connection {} lost: {}",
                c.q.remote_address(),
                c.lost.as_deref().unwrap_or("")
            );
            for s in c.streams.values_mut() {
                s.gone();
            }
            c.wake_all();
            true
        }
        Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => {
            while let Some(id) = c.q.streams().accept(Dir::Bi) {
                c.streams.insert(id, Slot::default());
                arrivals.push_back(Arrival::Stream(ch, id));
            }
            false
        }
        Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
            // Nothing uses them (and the limit is 0): drop whatever arrives.
            while let Some(id) = c.q.streams().accept(Dir::Uni) {
                let _ = c.q.recv_stream(id).stop(VarInt::from_u32(0));
            }
            false
        }
        Event::Stream(StreamEvent::Readable { id }) => {
            let reset = matches!(c.q.recv_stream(id).received_reset(), Ok(Some(_)));
            if let Some(s) = c.streams.get_mut(&id) {
                if reset {
                    s.gone();
                } else if let Some(w) = s.reader.take() {
                    w.wake();
                }
            }
            reset
        }
        Event::Stream(StreamEvent::Stopped { id, .. }) => {
            if let Some(s) = c.streams.get_mut(&id) {
                s.gone();
            }
            true
        }
        Event::Stream(StreamEvent::Writable { id } | StreamEvent::Finished { id }) => {
            if let Some(w) = c.streams.get_mut(&id).and_then(|s| s.writer.take()) {
                w.wake();
            }
            false
        }
        Event::Stream(StreamEvent::Available { .. }) => {
            for w in c.waiters.drain(..) {
                w.wake();
            }
            false
        }
        Event::HandshakeDataReady | Event::DatagramReceived | Event::DatagramsUnblocked => false,
    }
}
