//! The thread-per-core data plane: one monoio runtime per worker thread, each owning its
//! listeners (SO_REUSEPORT), its sessions, its splice pipes and its relays.
//!
//! - `host`: the worker host (threads, pinning, runtime, mailbox, close); knows no mode.
//! - `spec`, `admit`: how every session is admitted (slot, `block=`, dial, PROXY header,
//!   gauges, meters), shared by the modes.
//! - `forward/` (single-end forwarding) and `tunnel/` (both tunnel ends): the modes,
//!   siblings that each bring their own per-worker state and command type.
//! - `accept`, `dial`, `relay`, `meter`, `pipes`, `sessions`, `tasks`: the machinery.
//!
//! The control side talks to workers only through [`crate::bus`]; workers never share
//! anything mutable on the per-connection path except the process-wide slot and rate
//! limits (one atomic each, only when configured).

mod accept;
mod admit;
mod dial;
mod end;
mod forward;
mod host;
mod meter;
mod pipes;
mod relay;
mod sessions;
mod spec;
mod tasks;
mod tunnel;

pub use dial::{DialError, SourcePolicy};
pub use forward::start_forwarder;
pub use host::{DataPlane, WorkerSockets};
pub use relay::RelayKind;
pub use spec::SessionSpec;
pub use tunnel::{start_tunnel, Http2Dial, TunnelSide, TunnelSockets, TunnelSpec};
