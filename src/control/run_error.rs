//! Why a tunnel run ended, at the restart boundary: the restart policy and the tests match
//! on the variant, and the log line says it in words (its `Display`).

use std::fmt;
use std::io;

use super::client::ClientHandshakeError;
use crate::tls::TlsError;

/// Why a tunnel run ended other than by shutdown; the run is restarted after backoff.
#[derive(Debug)]
pub enum RunError {
    /// The tunnel address could not be bound (server).
    Listen {
        /// The address as configured.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The target address could not be bound where users arrive at this end.
    ListenTarget(io::Error),
    /// The server's address did not resolve (client).
    Resolve {
        /// The address as configured.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The TLS configuration could not be built.
    Tls(TlsError),
    /// The client's tunnel handshake failed.
    Handshake(ClientHandshakeError),
    /// No control channel within `NP_HANDSHAKE_TIMEOUT`.
    HandshakeTimeout,
    /// The control channel ended (read error, EOF, idle timeout: the worker's words).
    ControlLost(String),
    /// The TLS fingerprint check failed.
    VerifyFailed(String),
    /// The worker threads could not be started.
    StartWorkers(io::Error),
    /// The workers are gone (their event queue closed).
    WorkersGone,
    /// The control thread's own runtime could not be built.
    ControlRuntime(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Listen { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            RunError::ListenTarget(e) => write!(f, "cannot listen on target: {e}"),
            RunError::Resolve { addr, source } => write!(f, "cannot resolve {addr}: {source}"),
            RunError::Tls(e) => e.fmt(f),
            RunError::Handshake(e) => e.fmt(f),
            RunError::HandshakeTimeout => f.write_str("handshake timeout"),
            RunError::ControlLost(why) | RunError::VerifyFailed(why) => f.write_str(why),
            RunError::StartWorkers(e) => write!(f, "cannot start workers: {e}"),
            RunError::WorkersGone => f.write_str("workers are gone"),
            RunError::ControlRuntime(e) => write!(f, "control runtime: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<TlsError> for RunError {
    fn from(e: TlsError) -> RunError {
        RunError::Tls(e)
    }
}

impl From<ClientHandshakeError> for RunError {
    fn from(e: ClientHandshakeError) -> RunError {
        RunError::Handshake(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_keep_saying_why_in_words() {
        let refused = || io::Error::from(io::ErrorKind::AddrInUse);
        let cases = [
            (
                RunError::Listen {
                    addr: "0.0.0.0:10101".into(),
                    source: refused(),
                },
                "cannot listen on 0.0.0.0:10101: address in use",
            ),
            (RunError::HandshakeTimeout, "handshake timeout"),
            (
                RunError::ControlLost("control channel closed by peer".into()),
                "control channel closed by peer",
            ),
            (RunError::WorkersGone, "workers are gone"),
            (
                RunError::Handshake(ClientHandshakeError::Timeout),
                "tunnel handshake timed out",
            ),
        ];
        for (err, words) in cases {
            assert_eq!(err.to_string(), words);
        }
    }
}
