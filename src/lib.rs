//! # nodepass — a TCP/UDP tunnel on an io_uring thread-per-core data plane
//!
//! One URL starts one program: `server://` (public end of a tunnel), `client://` (private
//! end, or a single-end forwarder) or `master://` (the REST API that runs instances).
//! The wire protocol is NodePass v1.14.0's; see `docs/ARCHITECTURE.md` for the picture.
//!
//! Modules, lowest layer first (a module only uses modules in layers below it):
//!
//! 1. [`config`] — URL grammar, query parameters, `NP_*` environment → typed `Config` (pure).
//! 2. [`proto`] — wire formats that never touch a socket: handshake, signals, pool ids.
//!    [`net`] — socket creation and calls in one place (SO_REUSEPORT probe, bind-to-IP dials,
//!    `SocketExt`: TCP_NODELAY, keepalive, shutdowns, one-shot send/recv/peek).
//!    [`runtime`] — a monoio runtime on the chosen driver, and sockets adopted in its mode.
//!    [`sys`] — every libc call and `unsafe` block; the only way to borrow a socket's fd.
//!    [`tls`] — rustls configurations for tls=0/1/2, rcgen self-signed certificates, PEM reload.
//!    [`limit`] — process-wide token-bucket rate limiter and the exact slot limit.
//!    [`stats`] — per-worker counters, their sum, and the CHECK_POINT line (written and parsed).
//!    [`proxy_proto`] — PROXY protocol v1/v2 header encoding.
//!    [`wake`] — the wake-up primitives, one of each: a same-thread awaitable flag and the
//!    cross-thread queue whose receiver is awaited on a runtime.
//!    [`crowd`] — connections that have not proved themselves yet, capped per source IP and
//!    in total (the oldest evicted), on the tunnel port and the master API.
//!    [`bus`] — the only types that cross threads: the host's and each mode's commands to
//!    workers, the tunnel's events back, and the signal router (which worker owns a pool id).
//!    [`logging`] — NodePass's log line format and level names; escaping peer text and
//!    counting floods.
//!    [`shutdown`] — SIGINT/SIGTERM → a graceful-drain flag.
//! 3. [`dataplane`] — per-core monoio workers: a worker host that knows no mode, the
//!    admission steps every session takes, and the modes as siblings (`forward/`, `tunnel/`).
//!    [`control`] — tunnel handshake, signals, health, the drain, and why a run ended
//!    (`RunError`, at the restart boundary).
//!    [`master`] — the REST master in three rooms: `http` (a server that takes a handler),
//!    `api` (routes, event stream) and `instances` (supervisor, child processes, state file).
//! 4. [`app`] — wires one mode from a `Config`; `main.rs` maps errors to exit codes.
//!
//! `control` and `dataplane` never import each other; they share only `bus`. `master`
//! imports neither: it runs instances as child processes of this same binary.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod app;
pub mod bus;
pub mod config;
pub mod control;
pub mod crowd;
pub mod dataplane;
pub mod limit;
pub mod logging;
pub mod master;
pub mod net;
pub mod proto;
pub mod proxy_proto;
pub mod runtime;
pub mod shutdown;
pub mod stats;
pub mod sys;
pub mod tls;
pub mod wake;
