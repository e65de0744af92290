//! The API's TLS server configuration: tls=1 self-signed (rcgen), tls=2 PEM files; HTTP/1.1 only in ALPN.
// TODO(tls::server_config_for): use the shared tls module once it lands.

use std::io::BufReader;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;

/// Why no TLS configuration could be built.
#[derive(Debug)]
pub enum TlsSetupError {
    /// Certificate generation failed.
    Generate(String),
    /// The PEM files could not be read or hold no usable certificate/key.
    Files(String),
    /// rustls refused the configuration.
    Rustls(String),
}

impl std::fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsSetupError::Generate(e) => write!(f, "self-signed certificate: {e}"),
            TlsSetupError::Files(e) => write!(f, "certificate files: {e}"),
            TlsSetupError::Rustls(e) => write!(f, "tls config: {e}"),
        }
    }
}

fn build(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsSetupError::Rustls(e.to_string()))?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// tls=1: a fresh in-memory self-signed certificate.
pub fn self_signed(name: &str) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let mut names = vec!["localhost".to_string()];
    if !name.is_empty() && name != "localhost" {
        names.push(name.to_string());
    }
    let ck = rcgen::generate_simple_self_signed(names)
        .map_err(|e| TlsSetupError::Generate(e.to_string()))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.key_pair.serialize_der()));
    build(vec![ck.cert.der().clone()], key)
}

/// tls=2: certificate chain and key from PEM files.
pub fn from_files(crt: &str, key: &str) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let f = |e: std::io::Error| TlsSetupError::Files(e.to_string());
    let certs: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut BufReader::new(std::fs::File::open(crt).map_err(f)?))
            .collect::<Result<_, _>>()
            .map_err(f)?;
    if certs.is_empty() {
        return Err(TlsSetupError::Files(format!("no certificate in {crt}")));
    }
    let key =
        rustls_pemfile::private_key(&mut BufReader::new(std::fs::File::open(key).map_err(f)?))
            .map_err(f)?
            .ok_or_else(|| TlsSetupError::Files(format!("no private key in {key}")))?;
    build(certs, key)
}
