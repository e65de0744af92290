//! Why a TLS handshake failed, in words for a log line: the certificate we rejected and
//! why, the alert the peer sent us, an EOF or reset in the middle of the handshake. The
//! errors arrive as `io::Error`s that wrap a `rustls::Error` (monoio-rustls's own error
//! type displays all of them as "io error").
//!
//! Failed handshakes repeat at the pool's dial rate, so [`warn_handshake_failure`] logs one
//! WARN per cause every [`REPEAT`] and the repeats at DEBUG.

use std::io;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rustls::{AlertDescription, CertificateError, Error};

use super::client::is_ca_used_as_end_entity;

/// Which end of the handshake we are; only the wording depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// We dialled and verify the server's certificate.
    Client,
    /// We accepted and present our certificate.
    Server,
}

impl Role {
    fn peer(self) -> &'static str {
        match self {
            Role::Client => "server",
            Role::Server => "client",
        }
    }
}

/// The cause of a failed handshake ([`super::connect`], [`super::accept`]) or TLS I/O
/// error: the wrapped rustls error if there is one, else what the socket did.
pub fn describe_io(err: &io::Error, role: Role) -> String {
    if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        return describe_rustls(inner, role);
    }
    let peer = role.peer();
    match err.kind() {
        // "tls handshake alert" when the peer's close_notify arrives mid-handshake, "tls
        // handshake eof" when the socket just ends (our handshake and monoio-rustls's).
        io::ErrorKind::UnexpectedEof if err.to_string().contains("alert") => {
            format!("the {peer} closed the connection (close_notify) during the TLS handshake")
        }
        io::ErrorKind::UnexpectedEof => {
            format!("the {peer} closed the connection during the TLS handshake (EOF)")
        }
        io::ErrorKind::ConnectionReset => {
            format!("the {peer} reset the connection during the TLS handshake")
        }
        io::ErrorKind::BrokenPipe => {
            format!("the {peer} closed the connection during the TLS handshake (broken pipe)")
        }
        _ => format!("I/O error during the TLS handshake: {err}"),
    }
}

/// A rustls error in words.
pub fn describe_rustls(err: &Error, role: Role) -> String {
    let peer = role.peer();
    match err {
        Error::InvalidCertificate(cert) => {
            format!(
                "{peer} certificate rejected: {}",
                describe_certificate(cert, err)
            )
        }
        Error::AlertReceived(alert) => {
            format!(
                "the {peer} sent TLS alert {alert:?}: {}",
                alert_meaning(*alert, role)
            )
        }
        Error::NoCertificatesPresented => format!("the {peer} sent no certificate"),
        Error::InvalidMessage(_)
        | Error::InappropriateMessage { .. }
        | Error::InappropriateHandshakeMessage { .. } => {
            format!("the {peer} does not speak TLS here (is it using tls=0?): {err}")
        }
        Error::PeerIncompatible(why) => format!("the {peer} is incompatible: {why:?}"),
        Error::PeerMisbehaved(why) => format!("the {peer} broke the TLS protocol: {why:?}"),
        Error::DecryptError => format!("cannot decrypt the {peer}'s TLS records"),
        other => format!("TLS error: {other}"),
    }
}

fn describe_certificate(cert: &CertificateError, whole: &Error) -> String {
    match cert {
        CertificateError::UnknownIssuer => "unknown issuer: neither the certificate nor a CA \
             that signed it is trusted (trust store: the system CAs and SSL_CERT_FILE)"
            .to_owned(),
        CertificateError::NotValidForName => {
            "name mismatch: the certificate is not valid for the requested name (sni=)".to_owned()
        }
        CertificateError::NotValidForNameContext { .. } => format!("name mismatch: {cert}"),
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            format!("outside its validity period: {cert}")
        }
        CertificateError::BadSignature => "its signature does not verify".to_owned(),
        CertificateError::BadEncoding => "it is not a well-formed X.509 certificate".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            format!("not usable for a TLS server: {cert}")
        }
        CertificateError::Other(_) if is_ca_used_as_end_entity(whole) => {
            "it is a CA certificate (CA:TRUE) but used as the server certificate, and is not \
             itself trusted"
                .to_owned()
        }
        CertificateError::Other(other) => format!("{:?}", other.0),
        _ => format!("{cert}"),
    }
}

fn alert_meaning(alert: AlertDescription, role: Role) -> &'static str {
    let ours = role == Role::Server;
    match alert {
        AlertDescription::UnknownCA if ours => {
            "it does not trust our certificate (unknown CA; a tls=2 client needs our certificate \
             or its CA in SSL_CERT_FILE or the system store)"
        }
        AlertDescription::BadCertificate if ours => {
            "it rejected our certificate (bad certificate; for a tls=2 client usually its sni= \
             is not a name in our certificate)"
        }
        AlertDescription::CertificateExpired if ours => {
            "it rejected our certificate as expired or not yet valid"
        }
        AlertDescription::CertificateUnknown | AlertDescription::UnsupportedCertificate if ours => {
            "it rejected our certificate"
        }
        AlertDescription::ProtocolVersion => "no TLS version in common",
        AlertDescription::HandshakeFailure => "no cipher suite or parameters in common",
        AlertDescription::DecryptError => "a handshake signature or MAC did not verify",
        AlertDescription::UnrecognisedName => "it has no certificate for the requested name",
        AlertDescription::InternalError => "an internal error on its side",
        _ => "the handshake was aborted",
    }
}

/// How often one cause is logged at WARN; repeats in between go to DEBUG.
pub const REPEAT: Duration = Duration::from_secs(10);

struct Last {
    cause: String,
    at: Instant,
    repeats: u64,
}

static LAST: Mutex<Option<Last>> = Mutex::new(None);

/// Logs `{context}: {cause}` at WARN, unless the same cause was logged at WARN less than
/// [`REPEAT`] ago (then at DEBUG; the next WARN says how many there were in between).
pub fn warn_handshake_failure(context: &str, cause: &str) {
    match throttle(cause, Instant::now()) {
        Some(0) => log::warn!("{context}: {cause}"),
        Some(n) => log::warn!("{context}: {cause} ({n} more like this since the last report)"),
        None => log::debug!("{context}: {cause}"),
    }
}

/// `Some(repeats suppressed since the last WARN)` when this cause is due a WARN.
fn throttle(cause: &str, now: Instant) -> Option<u64> {
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    match last.as_mut() {
        Some(l) if l.cause == cause && now.saturating_duration_since(l.at) < REPEAT => {
            l.repeats += 1;
            None
        }
        Some(l) if l.cause == cause => {
            let repeats = l.repeats;
            l.at = now;
            l.repeats = 0;
            Some(repeats)
        }
        _ => {
            *last = Some(Last {
                cause: cause.to_owned(),
                at: now,
                repeats: 0,
            });
            Some(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_cause_warns_once_per_interval_and_counts_the_rest() {
        let t0 = Instant::now();
        let cause = "test cause that no other test uses";
        assert_eq!(throttle(cause, t0), Some(0));
        assert_eq!(throttle(cause, t0 + Duration::from_secs(1)), None);
        assert_eq!(throttle(cause, t0 + Duration::from_secs(2)), None);
        assert_eq!(throttle(cause, t0 + REPEAT), Some(2));
        assert_eq!(throttle("another cause", t0 + REPEAT), Some(0));
    }

    #[test]
    fn io_errors_name_the_wrapped_rustls_error_or_the_eof() {
        let wrapped = io::Error::new(
            io::ErrorKind::InvalidData,
            Error::AlertReceived(AlertDescription::UnknownCA),
        );
        let text = describe_io(&wrapped, Role::Server);
        assert!(text.contains("UnknownCA"), "{text}");
        assert!(text.contains("does not trust our certificate"), "{text}");
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        let text = describe_io(&eof, Role::Client);
        assert!(text.contains("EOF") && text.contains("server"), "{text}");
        let rejected = io::Error::new(
            io::ErrorKind::InvalidData,
            Error::InvalidCertificate(CertificateError::UnknownIssuer),
        );
        let text = describe_io(&rejected, Role::Client);
        assert!(text.contains("unknown issuer"), "{text}");
    }
}
