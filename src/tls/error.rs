//! `TlsError`: everything that can go wrong while building a TLS configuration.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a TLS configuration could not be built.
#[derive(Debug)]
pub enum TlsError {
    /// rcgen could not make the self-signed certificate.
    Generate(rcgen::Error),
    /// A PEM file could not be read or parsed.
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O or PEM error.
        source: io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    NoCertificate(PathBuf),
    /// The key file holds no private key block.
    NoPrivateKey(PathBuf),
    /// rustls refused the key, the key/certificate pair or the protocol versions.
    Rustls(rustls::Error),
    /// No usable trust anchor for a verifying client.
    Roots(rustls::client::VerifierBuilderError),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Generate(e) => write!(f, "generating a self-signed certificate: {e}"),
            TlsError::Read { path, source } => write!(f, "reading {}: {source}", path.display()),
            TlsError::NoCertificate(p) => write!(f, "no certificate in {}", p.display()),
            TlsError::NoPrivateKey(p) => write!(f, "no private key in {}", p.display()),
            TlsError::Rustls(e) => write!(f, "TLS setup: {e}"),
            TlsError::Roots(e) => write!(f, "TLS trust anchors: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> TlsError {
        TlsError::Rustls(e)
    }
}
