//! Handshakes between our client and server configurations: in memory (rustls connections
//! pumping bytes into each other) and over monoio TCP on 127.0.0.1 with both drivers.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConnection};

use super::*;
use crate::config::TlsMode;

/// A directory under the system temp dir, removed on drop.
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("np-tls-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    pub(super) fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Moves every pending TLS record from one side to the other.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut wire = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut wire).unwrap();
    }
    let mut rest = &wire[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

/// Runs a full handshake in memory; returns the server fingerprint the client saw.
fn handshake(
    client_config: Arc<ClientConfig>,
    server: &ServerTls,
    name: &'static str,
) -> Result<String, rustls::Error> {
    let name = ServerName::try_from(name).unwrap();
    let mut client = Connection::from(ClientConnection::new(client_config, name)?);
    let mut server = Connection::from(ServerConnection::new(server.config.clone())?);
    for _ in 0..10 {
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
        if !client.is_handshaking() && !server.is_handshaking() {
            assert_eq!(
                client.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
            let certs = client.peer_certificates().unwrap();
            return Ok(fingerprint(&certs[0]));
        }
    }
    panic!("handshake did not finish");
}

/// A CA and a leaf for `tunnel.test` signed by it, written as PEM files.
struct Pki {
    dir: TempDir,
    ca_der: rustls::pki_types::CertificateDer<'static>,
    crt: PathBuf,
    key: PathBuf,
}

fn make_pki(tag: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["tunnel.test".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();
    let dir = TempDir::new(tag);
    let crt = dir.write("crt.pem", leaf.pem().as_bytes());
    let key = dir.write("key.pem", leaf_key.serialize_pem().as_bytes());
    Pki {
        ca_der: ca.der().clone(),
        dir,
        crt,
        key,
    }
}

#[test]
fn insecure_client_completes_tls13_with_a_self_signed_server_and_sees_its_fingerprint() {
    let server = server_config_self_signed().unwrap();
    assert_eq!(server.mode, TlsMode::SelfSigned);
    let client = client_config_insecure().unwrap();
    let (config, seen) = client.config_capturing();
    let seen_fp = handshake(config, &server, "none").unwrap();
    assert_eq!(seen_fp, server.fingerprint());
    assert_eq!(seen.fingerprint(), Some(server.fingerprint()));
    // The shared configuration works too, without capture.
    assert_eq!(
        handshake(client.config(), &server, "none").unwrap(),
        seen_fp
    );
}

#[test]
fn verifying_client_accepts_a_server_certificate_signed_by_its_ca() {
    let pki = make_pki("verify");
    let server = server_config_from_files(&pki.crt, &pki.key, Duration::from_secs(3600)).unwrap();
    assert_eq!(server.mode, TlsMode::Files);
    let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
    let (config, seen) = client.config_capturing();
    assert_eq!(
        handshake(config, &server, "tunnel.test").unwrap(),
        server.fingerprint()
    );
    assert_eq!(seen.fingerprint(), Some(server.fingerprint()));
}

#[test]
fn verifying_client_rejects_a_wrong_name_or_an_unknown_ca() {
    let pki = make_pki("reject");
    let server = server_config_from_files(&pki.crt, &pki.key, Duration::from_secs(3600)).unwrap();
    let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
    let (config, seen) = client.config_capturing();
    assert!(handshake(config, &server, "other.test").is_err());
    assert_eq!(seen.fingerprint(), None);
    let stranger = make_pki("stranger");
    let client = client_config_trusting(vec![stranger.ca_der.clone()]).unwrap();
    assert!(handshake(client.config(), &server, "tunnel.test").is_err());
    let self_signed = server_config_self_signed().unwrap();
    assert!(handshake(client.config(), &self_signed, "localhost").is_err());
}

#[test]
fn verifying_client_takes_an_extra_ca_file_and_needs_some_root() {
    let pki = make_pki("extra");
    let ca_pem = pki.dir.write("ca.pem", pem_of(&pki.ca_der).as_bytes());
    let server = server_config_from_files(&pki.crt, &pki.key, Duration::from_secs(3600)).unwrap();
    let client = client_config_verifying(Some(&ca_pem)).unwrap();
    assert!(handshake(client.config(), &server, "tunnel.test").is_ok());
    let none = client_config_trusting(Vec::new());
    assert!(matches!(none, Err(TlsError::Roots(_))));
}

fn pem_of(der: &[u8]) -> String {
    let mut b64 = Vec::new();
    crate::proto::base64::encode_into(der, &mut b64);
    let body: Vec<String> = b64
        .chunks(64)
        .map(|c| String::from_utf8_lossy(c).into())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        body.join("\n")
    )
}

#[test]
fn files_are_reloaded_only_when_due_and_new_handshakes_get_the_new_certificate() {
    let first = make_pki("reload");
    let interval = Duration::from_secs(60);
    let start = Instant::now();
    let reloading = ReloadingCert::load(&first.crt, &first.key, interval, start).unwrap();
    let old_fp = fingerprint(&reloading.current().cert[0]);
    let second = make_pki("reload2");
    std::fs::copy(&second.crt, &first.crt).unwrap();
    std::fs::copy(&second.key, &first.key).unwrap();
    assert!(!reloading.reload_if_due(start + interval / 2).unwrap());
    assert_eq!(fingerprint(&reloading.current().cert[0]), old_fp);
    assert!(reloading.reload_if_due(start + interval).unwrap());
    let new_fp = fingerprint(&reloading.current().cert[0]);
    assert_ne!(new_fp, old_fp);
    // A broken file keeps the current certificate, and the next try waits an interval.
    std::fs::write(&first.crt, b"garbage").unwrap();
    assert!(reloading.reload_if_due(start + interval * 2).is_err());
    assert!(!reloading.reload_if_due(start + interval * 2).unwrap());
    assert_eq!(fingerprint(&reloading.current().cert[0]), new_fp);
}

#[test]
fn server_with_files_serves_the_reloaded_certificate() {
    let pki1 = make_pki("serve");
    let server = server_config_from_files(&pki1.crt, &pki1.key, Duration::ZERO).unwrap();
    let client = client_config_insecure().unwrap();
    let before = handshake(client.config(), &server, "x.test").unwrap();
    let pki2 = make_pki("serve2");
    std::fs::copy(&pki2.crt, &pki1.crt).unwrap();
    std::fs::copy(&pki2.key, &pki1.key).unwrap();
    // Interval zero: the resolver reloads on this very handshake.
    let after = handshake(client.config(), &server, "x.test").unwrap();
    assert_ne!(before, after);
    assert_eq!(after, server.fingerprint());
}

#[test]
fn unreadable_files_fall_back_to_self_signed_and_tls_off_has_no_config() {
    let tls = server_config_for(
        TlsMode::Files,
        "/nonexistent/crt",
        "/nonexistent/key",
        Duration::from_secs(1),
    )
    .unwrap()
    .unwrap();
    assert_eq!(tls.mode, TlsMode::SelfSigned);
    assert!(tls.reloader().is_none());
    assert!(server_config_for(TlsMode::Off, "", "", Duration::ZERO)
        .unwrap()
        .is_none());
    let pki = make_pki("for");
    let files = server_config_for(
        TlsMode::Files,
        pki.crt.to_str().unwrap(),
        pki.key.to_str().unwrap(),
        Duration::from_secs(1),
    )
    .unwrap()
    .unwrap();
    assert_eq!(files.mode, TlsMode::Files);
    assert!(files.reloader().is_some());
}

/// Accepts one TLS connection on 127.0.0.1:0, sends a pool id, echoes one message.
async fn tls_echo_over_loopback() {
    use monoio::io::{AsyncReadRentExt, AsyncWriteRentExt};

    let server = server_config_self_signed().unwrap();
    let config = server.config.clone();
    let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = monoio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = accept(config, tcp).await.unwrap();
        let (res, _) = tls.write_all(vec![0xcb, 0x5b, 0xaf, 0x6b]).await;
        res.unwrap();
        let (res, buf) = tls.read_exact(vec![0u8; 5]).await;
        res.unwrap();
        let (res, _) = tls.write_all(buf).await;
        res.unwrap();
    });
    let (config, seen) = client_config_insecure().unwrap().config_capturing();
    let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
    let mut tls = connect(config, ServerName::try_from("none").unwrap(), tcp)
        .await
        .unwrap();
    let (res, id) = tls.read_exact(vec![0u8; 4]).await;
    res.unwrap();
    assert_eq!(id, [0xcb, 0x5b, 0xaf, 0x6b]);
    let (res, _) = tls.write_all(b"hello".to_vec()).await;
    res.unwrap();
    let (res, echo) = tls.read_exact(vec![0u8; 5]).await;
    res.unwrap();
    assert_eq!(echo, b"hello");
    assert_eq!(seen.fingerprint(), Some(server.fingerprint()));
    served.await;
}

async fn within_10s(fut: impl std::future::Future<Output = ()>) {
    monoio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("TLS over loopback took longer than 10 s");
}

#[monoio::test(driver = "legacy", timer_enabled = true)]
async fn monoio_rustls_streams_carry_bytes_on_the_legacy_driver() {
    within_10s(tls_echo_over_loopback()).await;
}

#[test]
fn monoio_rustls_streams_carry_bytes_on_the_io_uring_driver() {
    if !monoio::utils::detect_uring() {
        eprintln!("io_uring unavailable here; the legacy-driver test covers the path");
        return;
    }
    let mut rt = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    rt.block_on(within_10s(tls_echo_over_loopback()));
}

/// A calendar date: year, month, day.
type Ymd = (i32, u8, u8);

/// Like `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=localhost
/// -addext subjectAltName=DNS:localhost,IP:127.0.0.1`: self-signed, `CA:TRUE`, P-256.
/// `validity` is (not before, not after).
fn openssl_like(tag: &str, validity: Option<(Ymd, Ymd)>) -> Pki {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    if let Some(((y0, m0, d0), (y1, m1, d1))) = validity {
        params.not_before = rcgen::date_time_ymd(y0, m0, d0);
        params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    }
    let cert = params.self_signed(&key).unwrap();
    let dir = TempDir::new(tag);
    let crt = dir.write("crt.pem", cert.pem().as_bytes());
    let key = dir.write("key.pem", key.serialize_pem().as_bytes());
    Pki {
        ca_der: cert.der().clone(),
        dir,
        crt,
        key,
    }
}

/// Runs a handshake that must fail; returns the client's and the server's error (the
/// server's is the alert the client sent, if it got that far).
fn failed_handshake(
    client_config: Arc<ClientConfig>,
    server: &ServerTls,
    name: &'static str,
) -> (Option<rustls::Error>, Option<rustls::Error>) {
    let name = ServerName::try_from(name).unwrap();
    let mut client = Connection::from(ClientConnection::new(client_config, name).unwrap());
    let mut server = Connection::from(ServerConnection::new(server.config.clone()).unwrap());
    let (mut client_err, mut server_err) = (None, None);
    for _ in 0..10 {
        if let Err(e) = transfer(&mut client, &mut server) {
            server_err = Some(e);
        }
        if let Err(e) = transfer(&mut server, &mut client) {
            client_err = Some(e);
        }
        if server_err.is_some() || !client.wants_write() && client_err.is_some() {
            break;
        }
    }
    assert!(client.is_handshaking(), "the handshake must not complete");
    (client_err, server_err)
}

fn files_server(pki: &Pki) -> ServerTls {
    server_config_from_files(&pki.crt, &pki.key, Duration::from_secs(3600)).unwrap()
}

#[test]
fn a_trusted_self_signed_ca_certificate_is_accepted_as_the_server_certificate() {
    let pki = openssl_like("openssl", None);
    let server = files_server(&pki);
    let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
    for name in ["localhost", "127.0.0.1"] {
        let (config, seen) = client.config_capturing();
        assert_eq!(
            handshake(config, &server, name).unwrap(),
            server.fingerprint()
        );
        assert_eq!(seen.fingerprint(), Some(server.fingerprint()));
    }
    // Through the PEM trust file as SSL_CERT_FILE gives it.
    let client = client_config_verifying(Some(&pki.crt)).unwrap();
    assert!(handshake(client.config(), &server, "localhost").is_ok());
}

#[test]
fn a_trusted_self_signed_ca_certificate_still_needs_the_right_name() {
    let pki = openssl_like("openssl-name", None);
    let server = files_server(&pki);
    let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
    let (client_err, server_err) = failed_handshake(client.config(), &server, "wrong.test");
    let client_err = client_err.unwrap();
    assert!(
        matches!(
            client_err,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. }
            )
        ),
        "{client_err:?}"
    );
    let text = describe_rustls(&client_err, Role::Client);
    assert!(
        text.contains("name mismatch") && text.contains("wrong.test"),
        "{text}"
    );
    let server_err = server_err.unwrap();
    assert_eq!(
        server_err,
        rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate)
    );
    let text = describe_rustls(&server_err, Role::Server);
    assert!(text.contains("rejected our certificate"), "{text}");
}

#[test]
fn an_untrusted_self_signed_ca_certificate_is_an_unknown_issuer_on_both_ends() {
    let pki = openssl_like("openssl-untrusted", None);
    let other = openssl_like("openssl-other", None);
    let server = files_server(&pki);
    let client = client_config_trusting(vec![other.ca_der.clone()]).unwrap();
    let (client_err, server_err) = failed_handshake(client.config(), &server, "localhost");
    let client_err = client_err.unwrap();
    assert_eq!(
        client_err,
        rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)
    );
    let text = describe_rustls(&client_err, Role::Client);
    assert!(text.contains("unknown issuer"), "{text}");
    let server_err = server_err.unwrap();
    assert_eq!(
        server_err,
        rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA)
    );
    let text = describe_rustls(&server_err, Role::Server);
    assert!(
        text.contains("UnknownCA") && text.contains("does not trust our certificate"),
        "{text}"
    );
}

#[test]
fn a_trusted_self_signed_ca_certificate_must_be_within_its_validity_period() {
    // This also guards what the verifier relies on: webpki checks the validity period
    // before it reports CaUsedAsEndEntity.
    for (tag, validity) in [
        ("expired", ((2000, 1, 1), (2001, 1, 1))),
        ("future", ((2990, 1, 1), (2999, 1, 1))),
    ] {
        let pki = openssl_like(tag, Some(validity));
        let server = files_server(&pki);
        let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
        let (client_err, server_err) = failed_handshake(client.config(), &server, "localhost");
        let client_err = client_err.unwrap();
        assert!(
            matches!(
                client_err,
                rustls::Error::InvalidCertificate(
                    rustls::CertificateError::ExpiredContext { .. }
                        | rustls::CertificateError::NotValidYetContext { .. }
                )
            ),
            "{tag}: {client_err:?}"
        );
        let text = describe_rustls(&client_err, Role::Client);
        assert!(text.contains("validity period"), "{text}");
        assert_eq!(
            server_err,
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateExpired
            ))
        );
    }
}

#[test]
fn a_pinned_leaf_is_trusted_without_its_issuer_as_go_does() {
    let pki = make_pki("pinned");
    let server = files_server(&pki);
    let leaf_der = load_pem_files(&pki.crt, &pki.key).unwrap().cert[0].clone();
    let client = client_config_trusting(vec![leaf_der]).unwrap();
    let ok = handshake(client.config(), &server, "tunnel.test");
    assert!(ok.is_ok(), "{ok:?}");
    let (client_err, _) = failed_handshake(client.config(), &server, "other.test");
    assert!(matches!(
        client_err,
        Some(rustls::Error::InvalidCertificate(
            rustls::CertificateError::NotValidForNameContext { .. }
        ))
    ));
}

#[test]
fn a_plain_tcp_peer_or_an_eof_is_named_on_a_tls_server() {
    let server = server_config_self_signed().unwrap();
    let mut conn = ServerConnection::new(server.config.clone()).unwrap();
    let mut garbage = &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..];
    conn.read_tls(&mut garbage).unwrap();
    let err = conn.process_new_packets().unwrap_err();
    let text = describe_rustls(&err, Role::Server);
    assert!(text.contains("does not speak TLS"), "{text}");
}

/// Our handshakes over monoio TCP on 127.0.0.1 with a wrong server name: the client's
/// error and what the server saw, for each of `rounds` connections.
async fn wrong_name_over_loopback(rounds: usize) -> Vec<(String, String)> {
    let pki = openssl_like("loopback-name", None);
    let server = files_server(&pki);
    let config = server.config.clone();
    let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let served = monoio::spawn(async move {
        let mut seen = Vec::new();
        for _ in 0..rounds {
            let (tcp, _) = listener.accept().await.unwrap();
            let err = accept(config.clone(), tcp).await.err().unwrap();
            seen.push(describe_io(&err, Role::Server));
        }
        seen
    });
    let client = client_config_trusting(vec![pki.ca_der.clone()]).unwrap();
    let mut client_seen = Vec::new();
    for _ in 0..rounds {
        let tcp = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
        let name = ServerName::try_from("wrong.test").unwrap();
        let err = connect(client.config(), name, tcp).await.err().unwrap();
        client_seen.push(describe_io(&err, Role::Client));
    }
    client_seen.into_iter().zip(served.await).collect()
}

#[test]
fn a_refused_certificate_reaches_the_server_as_an_alert_not_an_eof() {
    // monoio-rustls's own handshake lost this alert behind TLS 1.3's compatibility CCS.
    let mut rt = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
        .enable_timer()
        .build()
        .unwrap();
    let seen = rt.block_on(async {
        monoio::time::timeout(Duration::from_secs(10), wrong_name_over_loopback(5))
            .await
            .expect("handshakes over loopback took longer than 10 s")
    });
    for (client, server) in seen {
        assert!(client.contains("name mismatch"), "{client}");
        assert!(server.contains("BadCertificate"), "{server}");
    }
}
