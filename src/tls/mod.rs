//! rustls configurations for `tls=1` (in-memory self-signed certificate, any-certificate
//! client) and `tls=2` (PEM files reloaded every `NP_RELOAD_INTERVAL`, verifying client),
//! plus the certificate fingerprint the `verify` signal carries (PROTOCOL.md §3.A.6).
//! Streams come from `monoio_rustls::{TlsAcceptor, TlsConnector}` over these configs.

mod cert;
mod client;
mod error;
mod server;
#[cfg(test)]
mod tests;

pub use cert::{fingerprint, load_pem_files, self_signed};
pub use client::{
    client_config_insecure, client_config_verifying, client_config_with_roots, ClientTls, SeenCert,
    SYSTEM_CA_FILES,
};
pub use error::TlsError;
pub use rustls::sign::CertifiedKey;
pub use server::{
    server_config_for, server_config_from_files, server_config_self_signed, ReloadingCert,
    ServerTls,
};
