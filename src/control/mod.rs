//! The control thread: what runs beside the data plane. For single-end forwarding that is
//! the CHECK_POINT ticker, DNS refresh and the graceful drain; the tunnel handshake,
//! signals and pool bookkeeping of dual-end mode live here too.

pub mod dns;
pub mod single_end;
