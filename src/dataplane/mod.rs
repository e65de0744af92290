//! The thread-per-core data plane: one monoio runtime per worker thread, each owning its
//! listeners (SO_REUSEPORT), its sessions, its splice pipes and its relays.
//!
//! The control side talks to workers only through [`crate::bus`]; workers never share
//! anything mutable on the per-connection path except the process-wide slot and rate
//! limits (one atomic each, only when configured).

mod accept;
mod dial;
mod flag;
mod forward;
mod pipes;
mod relay;
mod sessions;
mod tasks;
mod tunnel;
mod udp;
mod worker;

pub use dial::{DialError, SourcePolicy};
pub use relay::RelayKind;
pub use tunnel::{start_tunnel, TunnelSide, TunnelSockets, TunnelSpec};
pub use worker::{start_forwarder, DataPlane, ForwardSpec, WorkerSockets};
