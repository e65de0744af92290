//! The API's TLS acceptor: the shared `crate::tls` server configuration (tls=2 files reload
//! every `NP_RELOAD_INTERVAL`), with ALPN limited to HTTP/1.1 since we do not speak h2.

use std::sync::Arc;

use crate::config::Config;
use crate::tls::{server_config_for, TlsError};

/// The acceptor for `cfg`'s `tls=` mode: `None` for tls=0. A tls=2 whose files fail to
/// load falls back to a self-signed certificate inside `server_config_for`, as Go does.
pub fn acceptor(cfg: &Config) -> Result<Option<monoio_rustls::TlsAcceptor>, TlsError> {
    let Some(tls) = server_config_for(
        cfg.params.tls,
        &cfg.params.crt,
        &cfg.params.key_file,
        cfg.env.reload_interval,
    )?
    else {
        return Ok(None);
    };
    // The resolver is shared by the clone, so tls=2 reloads still reach this config.
    let mut config = (*tls.config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(monoio_rustls::TlsAcceptor::from(Arc::new(config))))
}
