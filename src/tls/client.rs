//! Client configurations: tls=1 accepts any certificate (still checking the handshake
//! signature), tls=2 verifies against system roots. Either can record the fingerprint of
//! the certificate a connection saw, for the `verify` signal.

use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{verify_server_name, Resumption, Tls12Resumption, WebPkiServerVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme,
};

use super::cert::{fingerprint, provider};
use super::tickets::TicketStore;
use super::TlsError;

/// Where Linux distributions keep their CA bundle; the first that exists is used.
pub const SYSTEM_CA_FILES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A client configuration for one tls mode.
#[derive(Debug, Clone)]
pub struct ClientTls {
    shared: Arc<ClientConfig>,
    /// `shared` with TLS 1.3 resumption from a [`TicketStore`] (see [`Self::config_resuming`]).
    resuming: Arc<ClientConfig>,
    verifier: Arc<dyn ServerCertVerifier>,
}

/// Tickets kept per server for resumption: a pool refill's burst of parallel dials.
const TICKETS_PER_SERVER: usize = 256;

impl ClientTls {
    fn new(
        verifier: Arc<dyn ServerCertVerifier>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<ClientTls, TlsError> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        // Go's client keeps no session cache, so against a peer that may be Go we do not
        // resume either (and a resumed session would skip `config_capturing`'s capture).
        config.resumption = Resumption::disabled();
        let mut resuming = config.clone();
        resuming.resumption = Resumption::store(Arc::new(TicketStore::new(TICKETS_PER_SERVER)))
            .tls12_resumption(Tls12Resumption::Disabled);
        Ok(ClientTls {
            shared: Arc::new(config),
            resuming: Arc::new(resuming),
            verifier,
        })
    }

    /// The configuration for [`super::connect`].
    pub fn config(&self) -> Arc<ClientConfig> {
        self.shared.clone()
    }

    /// The configuration for [`super::connect_seeing`] to a server known to be ours (the
    /// `auth1` profile was agreed): it resumes TLS 1.3 sessions with the server's tickets,
    /// so a pool connection after the first costs no certificate and no signature on
    /// either end. Resumption skips the certificate verifier, but the session keeps the
    /// certificate it was first verified with, and `connect_seeing` reports that one. The
    /// tickets live as long as this `ClientTls`, which a tunnel client builds per run, so
    /// none outlives the run whose handshake proved the server's certificate.
    pub fn config_resuming(&self) -> Arc<ClientConfig> {
        self.resuming.clone()
    }

    /// A configuration for one connection that records the server certificate's
    /// fingerprint in the returned [`SeenCert`] once the certificate is accepted: for
    /// handshakes driven elsewhere (QUIC's); [`super::connect_seeing`] reports it itself.
    pub fn config_capturing(&self) -> (Arc<ClientConfig>, SeenCert) {
        let seen = SeenCert::default();
        let mut config = (*self.shared).clone();
        config
            .dangerous()
            .set_certificate_verifier(Arc::new(Capturing {
                inner: self.verifier.clone(),
                seen: seen.clone(),
            }));
        (Arc::new(config), seen)
    }
}

/// The fingerprint of the certificate one client connection accepted.
#[derive(Debug, Clone, Default)]
pub struct SeenCert(Arc<OnceLock<String>>);

impl SeenCert {
    /// `sha256:AB:…` of the server's leaf certificate, once the handshake got that far.
    pub fn fingerprint(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

/// tls=1: any certificate, TLS 1.3 only (Go: InsecureSkipVerify, MinVersion 1.3).
pub fn client_config_insecure() -> Result<ClientTls, TlsError> {
    let verifier = AcceptAnyCert {
        algorithms: provider().signature_verification_algorithms,
    };
    ClientTls::new(Arc::new(verifier), &[&rustls::version::TLS13])
}

/// tls=2: verify against the system CA bundle (see [`SYSTEM_CA_FILES`]) plus an optional
/// extra PEM CA file. TLS 1.2 and 1.3.
pub fn client_config_verifying(extra_ca: Option<&Path>) -> Result<ClientTls, TlsError> {
    let mut trusted = Vec::new();
    if let Some(system) = SYSTEM_CA_FILES.iter().map(Path::new).find(|p| p.is_file()) {
        match read_certs(system) {
            Ok(certs) => {
                log::debug!("{} system CA certificates read", certs.len());
                trusted.extend(certs);
            }
            Err(e) => log::warn!("system CA bundle unusable: {e}"),
        }
    }
    if let Some(path) = extra_ca {
        trusted.extend(read_certs(path)?);
    }
    client_config_trusting(trusted)
}

/// A verifying client trusting exactly `trusted` (CA certificates, or server certificates
/// trusted as they are). Certificates that do not parse are skipped.
pub fn client_config_trusting(
    trusted: Vec<CertificateDer<'static>>,
) -> Result<ClientTls, TlsError> {
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(trusted.iter().cloned());
    log::debug!("{added} trusted certificates, {ignored} unparsable ones ignored");
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(TlsError::Roots)?;
    let verifier = TrustedLeafOrChain {
        webpki,
        trusted: trusted.into_iter().map(|c| c.as_ref().to_vec()).collect(),
    };
    ClientTls::new(Arc::new(verifier), rustls::DEFAULT_VERSIONS)
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_err = |source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(read_err)?);
    rustls_pemfile::certs(&mut reader)
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
}

/// Accepts every certificate but still verifies the handshake signature with it, so the
/// peer must hold the key of the certificate whose fingerprint we report.
#[derive(Debug)]
struct AcceptAnyCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// tls=2's verifier: webpki path validation to a trusted root, and, as Go's `x509.Verify`
/// does, a server certificate that is itself in the trust store is trusted as it is (the
/// common `openssl req -x509` certificate is self-signed with `CA:TRUE`, which webpki
/// refuses as an end entity). Such a certificate must still be valid now and carry the
/// requested name; the handshake signature checks stay with the default provider.
#[derive(Debug)]
struct TrustedLeafOrChain {
    webpki: Arc<WebPkiServerVerifier>,
    /// DER of every trusted certificate.
    trusted: HashSet<Vec<u8>>,
}

impl ServerCertVerifier for TrustedLeafOrChain {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let err =
            match self
                .webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
            {
                Ok(verified) => return Ok(verified),
                Err(err) => err,
            };
        // webpki checks the certificate's own properties in this order: validity period,
        // basic constraints (CaUsedAsEndEntity), key usage; then it looks for an issuer
        // (UnknownIssuer, or BadSignature when a certificate with the issuer's name did not
        // sign it). Any error below therefore means the validity period passed.
        let leaf_valid_now = is_ca_used_as_end_entity(&err)
            || matches!(
                err,
                Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature
                )
            );
        if !leaf_valid_now {
            return Err(err);
        }
        if self.trusted.contains(end_entity.as_ref()) {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_name(&cert, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        // A self-signed CA certificate that is not trusted: say "unknown issuer" (and send
        // the peer an unknown_ca alert) rather than webpki's "CA used as end entity".
        if is_ca_used_as_end_entity(&err) && is_self_issued(end_entity) {
            return Err(CertificateError::UnknownIssuer.into());
        }
        Err(err)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// webpki's `CaUsedAsEndEntity`, which rustls passes on as an opaque "other" error.
pub(super) fn is_ca_used_as_end_entity(err: &Error) -> bool {
    match err {
        Error::InvalidCertificate(CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// Issuer and subject are the same name (a self-signed certificate).
fn is_self_issued(der: &CertificateDer<'_>) -> bool {
    webpki::EndEntityCert::try_from(der).is_ok_and(|c| c.issuer() == c.subject())
}

/// Wraps a verifier and records the fingerprint of the certificate it accepted.
#[derive(Debug)]
struct Capturing {
    inner: Arc<dyn ServerCertVerifier>,
    seen: SeenCert,
}

impl ServerCertVerifier for Capturing {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        let _ = self.seen.0.set(fingerprint(end_entity));
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
