//! The master's HTTP layer: a small HTTP/1.1 server on httparse that knows nothing of
//! NodePass. It takes a [`message::Handler`] and serves it.
//!
//! - `server`: accept loop, TLS, connection cap (503).
//! - `conn`: one connection: keep-alive, deadlines, `Expect: 100-continue`.
//! - `body`: pure parsing of request heads and bodies (Content-Length, chunked).
//! - `message`: `Request`, `Response`, the `Handler` and `EventSource` traits, encoding.
//! - `sse`: writing one event stream from an `EventSource`.
//! - `limits`: head ≤ 16 KiB (431), body ≤ 1 MiB (413), deadlines, the connection cap.

pub mod body;
pub mod conn;
pub mod limits;
pub mod message;
pub mod server;
pub mod sse;
