//! Wire formats that never touch a socket: the tunnel handshake, control signals and
//! their line framing, and pool connection ids. Every function here is pure (bytes in,
//! bytes or values out), so it is deterministic to test and a natural fuzzing entry.

pub mod auth;
pub(crate) mod base64;
pub mod handshake;
mod line;
pub mod pool_id;
pub mod signal;
pub mod ws;

pub use handshake::{Flow, HandshakeError, Parse, TunnelConfig};
pub use line::{LineBuf, MAX_SIGNAL_LINE};
pub use pool_id::{PoolId, PoolIdError};
pub use signal::{decode_line, encode_line, Action, Signal, SignalError};
