//! rustls configurations for `tls=1` (in-memory self-signed certificate, any-certificate
//! client) and `tls=2` (PEM files reloaded every `NP_RELOAD_INTERVAL`, verifying client),
//! plus the certificate fingerprint the `verify` signal carries (PROTOCOL.md §3.A.6).
//! [`connect`] and [`accept`] run handshakes over these configs and return monoio-rustls
//! streams ([`connect_seeing`] also reports the server's fingerprint and whether the session
//! was resumed: between our peers, with tickets kept in `tickets`); failures are worded by
//! [`describe_io`].

mod cert;
mod client;
mod error;
mod failure;
mod handshake;
mod server;
#[cfg(test)]
mod tests;
mod tickets;
#[cfg(test)]
mod verify_tests;

pub use cert::{fingerprint, load_pem_files, self_signed};
pub use client::{
    client_config_insecure, client_config_trusting, client_config_verifying, ClientTls, SeenCert,
    SYSTEM_CA_FILES,
};
pub use error::TlsError;
pub use failure::{describe_io, describe_rustls, warn_handshake_failure, Role};
pub use handshake::{accept, connect, connect_seeing, ServerSeen};
pub use rustls::sign::CertifiedKey;
pub use server::{
    server_config_for, server_config_from_files, server_config_self_signed, ReloadingCert,
    ServerTls,
};
