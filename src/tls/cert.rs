//! Certificates: rcgen self-signed in memory, PEM files from disk, and fingerprints.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use super::TlsError;

/// The one crypto provider (ring) every configuration uses, built once.
pub(super) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| {
            let mut provider = rustls::crypto::ring::default_provider();
            prefer_aes_128(&mut provider.cipher_suites);
            Arc::new(provider)
        })
        .clone()
}

/// Put TLS 1.3's AES-128-GCM-SHA256 first, as Go does on CPUs with AES instructions (its
/// server picks it, its client offers it first). rustls lists AES-256-GCM-SHA384 first,
/// so two of our peers used it: 14 AES rounds instead of 10 per block, and a handshake
/// whose every HKDF step runs SHA-384, which has no CPU instructions (SHA-256 has them).
/// A cpu-clock profile of new tls=1 tunnel connections showed SHA-512 blocks at 5 % of
/// all CPU.
fn prefer_aes_128(suites: &mut [rustls::SupportedCipherSuite]) {
    let aes_128 = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
    if let Some(i) = suites.iter().position(|s| s.suite() == aes_128) {
        suites[..=i].rotate_right(1);
    }
}

/// A fresh self-signed ECDSA P-256 certificate and key, in memory only (as Go's tls=1).
pub fn self_signed() -> Result<CertifiedKey, TlsError> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .map_err(TlsError::Generate)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    let chain = vec![generated.cert.der().clone()];
    Ok(CertifiedKey::from_der(chain, key, &provider())?)
}

/// Loads a PEM certificate chain and private key (PKCS#8, PKCS#1 or SEC1) and checks
/// that they belong together.
pub fn load_pem_files(crt: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Read { path, source }
    };
    let mut crt_reader = BufReader::new(File::open(crt).map_err(read_err(crt))?);
    let chain = rustls_pemfile::certs(&mut crt_reader)
        .collect::<Result<Vec<CertificateDer<'static>>, _>>()
        .map_err(read_err(crt))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(crt.to_path_buf()));
    }
    let mut key_reader = BufReader::new(File::open(key).map_err(read_err(key))?);
    let key_der = rustls_pemfile::private_key(&mut key_reader)
        .map_err(read_err(key))?
        .ok_or_else(|| TlsError::NoPrivateKey(key.to_path_buf()))?;
    Ok(CertifiedKey::from_der(chain, key_der, &provider())?)
}

/// NodePass v1.14.0's fingerprint: `sha256:` and the SHA-256 of the DER certificate as
/// uppercase hex bytes joined by `:` (e.g. `sha256:AB:CD:…`, 102 chars).
pub fn fingerprint(cert_der: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let digest = Sha256::digest(cert_der);
    let mut out = String::with_capacity(7 + 32 * 3);
    out.push_str("sha256:");
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_uppercase_colon_separated_sha256() {
        // SHA-256("abc") = ba7816bf 8f01cfea 414140de 5dae2223 b00361a3 96177a9c b410ff61 f20015ad
        assert_eq!(
            fingerprint(b"abc"),
            "sha256:BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:\
             B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
        );
    }

    #[test]
    fn self_signed_certificates_are_fresh_each_time() {
        let a = self_signed().unwrap();
        let b = self_signed().unwrap();
        assert_eq!(a.cert.len(), 1);
        assert_ne!(fingerprint(&a.cert[0]), fingerprint(&b.cert[0]));
        assert!(a.keys_match().is_ok());
    }

    #[test]
    fn missing_or_empty_pem_files_give_specific_errors() {
        let dir = super::super::tests::TempDir::new("pem");
        let empty = dir.write("empty.pem", b"");
        let nowhere = dir.path("nowhere.pem");
        assert!(matches!(
            load_pem_files(&nowhere, &empty),
            Err(TlsError::Read { .. })
        ));
        assert!(matches!(
            load_pem_files(&empty, &empty),
            Err(TlsError::NoCertificate(_))
        ));
        let generated = rcgen::generate_simple_self_signed(vec!["x".into()]).unwrap();
        let crt = dir.write("crt.pem", generated.cert.pem().as_bytes());
        assert!(matches!(
            load_pem_files(&crt, &empty),
            Err(TlsError::NoPrivateKey(_))
        ));
        let other = rcgen::generate_simple_self_signed(vec!["y".into()]).unwrap();
        let wrong_key = dir.write("key.pem", other.key_pair.serialize_pem().as_bytes());
        assert!(matches!(
            load_pem_files(&crt, &wrong_key),
            Err(TlsError::Rustls(_))
        ));
    }
}
