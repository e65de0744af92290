//! The control thread: what runs beside the data plane. For single-end forwarding that is
//! the CHECK_POINT ticker, DNS refresh and the graceful drain; for the dual-end tunnel the
//! client handshake, the control loop (signals, health, routing) and restart backoff.

pub mod backoff;
pub mod client;
pub mod dns;
pub mod single_end;
pub mod tunnel;
