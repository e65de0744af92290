//! Server configurations: TLS 1.3 only, no ALPN, the certificate chosen per handshake by a
//! resolver so `tls=2` can swap in reloaded files without touching live connections.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::cert::{fingerprint, load_pem_files, provider, self_signed};
use super::TlsError;
use crate::config::TlsMode;

/// A server configuration and what it serves.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// For [`super::accept`] (and `monoio_rustls::TlsAcceptor::from`).
    pub config: Arc<ServerConfig>,
    /// The mode actually in effect (tls=2 falls back to 1 when the files do not load);
    /// this is what the handshake reply announces.
    pub mode: TlsMode,
    cert: CertSource,
}

#[derive(Debug, Clone)]
enum CertSource {
    Fixed(Arc<CertifiedKey>),
    Files(Arc<ReloadingCert>),
}

impl ServerTls {
    /// The fingerprint of the leaf certificate served now (sent in our `verify` signal;
    /// unlike Go v1.14.0 this is never empty for tls=2, §9.11).
    pub fn fingerprint(&self) -> String {
        let key = match &self.cert {
            CertSource::Fixed(key) => key.clone(),
            CertSource::Files(reloading) => reloading.current(),
        };
        key.cert
            .first()
            .map_or_else(String::new, |c| fingerprint(c))
    }

    /// The reloading resolver of a tls=2 configuration, for periodic
    /// [`ReloadingCert::reload_if_due`] calls.
    pub fn reloader(&self) -> Option<&Arc<ReloadingCert>> {
        match &self.cert {
            CertSource::Fixed(_) => None,
            CertSource::Files(r) => Some(r),
        }
    }
}

/// Always the same certificate (tls=1).
#[derive(Debug)]
struct FixedCert(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A tls=2 certificate re-read from its PEM files once per interval. A failed reload keeps
/// the previous certificate (and is logged); new handshakes get the newest one.
#[derive(Debug)]
pub struct ReloadingCert {
    crt: PathBuf,
    key: PathBuf,
    interval: Duration,
    current: RwLock<Arc<CertifiedKey>>,
    next_check: Mutex<Instant>,
}

impl ReloadingCert {
    /// Loads the files now; the first reload is due `interval` after `now`.
    pub fn load(
        crt: &Path,
        key: &Path,
        interval: Duration,
        now: Instant,
    ) -> Result<ReloadingCert, TlsError> {
        let loaded = load_pem_files(crt, key)?;
        Ok(ReloadingCert {
            crt: crt.to_path_buf(),
            key: key.to_path_buf(),
            interval,
            current: RwLock::new(Arc::new(loaded)),
            next_check: Mutex::new(now + interval),
        })
    }

    /// The certificate new handshakes get.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Re-reads the files if the interval has passed since the last check. `Ok(true)` when a
    /// new certificate was installed; `Ok(false)` when not due (or another thread is
    /// already reloading). On error the old certificate stays and the next try is one
    /// interval later.
    pub fn reload_if_due(&self, now: Instant) -> Result<bool, TlsError> {
        let mut next = match self.next_check.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return Ok(false),
        };
        if now < *next {
            return Ok(false);
        }
        *next = now + self.interval;
        match load_pem_files(&self.crt, &self.key) {
            Ok(loaded) => {
                let fp = loaded
                    .cert
                    .first()
                    .map(|c| fingerprint(c))
                    .unwrap_or_default();
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
                log::info!("TLS certificate reloaded from {}: {fp}", self.crt.display());
                Ok(true)
            }
            Err(e) => {
                log::warn!("TLS certificate reload failed, keeping the old one: {e}");
                Err(e)
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // Errors are logged inside; the handshake goes on with the old certificate.
        let _ = self.reload_if_due(Instant::now());
        Some(self.current())
    }
}

fn build(resolver: Arc<dyn ResolvesServerCert>) -> Result<Arc<ServerConfig>, TlsError> {
    // Go sets MinVersion TLS 1.3 for tls=1; we use 1.3 for tls=2 as well: both ends of a
    // tunnel are NodePass, and every Go 1.x TLS stack speaks 1.3.
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // One stateless ticket per connection: a client of ours resumes with it when the
    // server is known to be ours (`ClientTls::config_resuming`), skipping the certificate
    // and its signature. Go's client keeps no session cache and drops it, as it drops the
    // tickets of Go's own server. Nothing is stored server-side.
    config.send_tls13_tickets = 1;
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(TlsError::Rustls)?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    Ok(Arc::new(config))
}

/// tls=1: a fresh in-memory self-signed certificate.
pub fn server_config_self_signed() -> Result<ServerTls, TlsError> {
    let key = Arc::new(self_signed()?);
    Ok(ServerTls {
        config: build(Arc::new(FixedCert(key.clone())))?,
        mode: TlsMode::SelfSigned,
        cert: CertSource::Fixed(key),
    })
}

/// tls=2: the PEM files, re-read every `reload_interval` (`NP_RELOAD_INTERVAL`).
pub fn server_config_from_files(
    crt: &Path,
    key: &Path,
    reload_interval: Duration,
) -> Result<ServerTls, TlsError> {
    let reloading = Arc::new(ReloadingCert::load(
        crt,
        key,
        reload_interval,
        Instant::now(),
    )?);
    Ok(ServerTls {
        config: build(reloading.clone())?,
        mode: TlsMode::Files,
        cert: CertSource::Files(reloading),
    })
}

/// The server side of a `tls=` mode: `None` for tls=0. For tls=2, files that fail to load
/// are logged at ERROR and the server falls back to a self-signed certificate (tls=1),
/// as Go does; check [`ServerTls::mode`] for what is in effect.
pub fn server_config_for(
    mode: TlsMode,
    crt: &str,
    key: &str,
    reload_interval: Duration,
) -> Result<Option<ServerTls>, TlsError> {
    match mode {
        TlsMode::Off => Ok(None),
        TlsMode::SelfSigned => server_config_self_signed().map(Some),
        TlsMode::Files => {
            match server_config_from_files(Path::new(crt), Path::new(key), reload_interval) {
                Ok(tls) => Ok(Some(tls)),
                Err(e) => {
                    log::error!("TLS certificate load failed, using a self-signed one: {e}");
                    server_config_self_signed().map(Some)
                }
            }
        }
    }
}
