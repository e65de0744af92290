//! The tls=2 verifier with openssl's most common certificate (self-signed, `CA:TRUE`) and
//! the words for each handshake failure, in memory and over monoio TCP on 127.0.0.1 with
//! both drivers.

use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConnection};

use super::tests::{handshake, make_pki, on_io_uring, transfer, Pki, TempDir};
use super::*;

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

async fn alert_reaches_the_server() {
    let seen = monoio::time::timeout(Duration::from_secs(10), wrong_name_over_loopback(5))
        .await
        .expect("handshakes over loopback took longer than 10 s");
    for (client, server) in seen {
        assert!(client.contains("name mismatch"), "{client}");
        assert!(server.contains("BadCertificate"), "{server}");
    }
}

// monoio-rustls's own handshake lost this alert behind TLS 1.3's compatibility CCS.
#[monoio::test(driver = "legacy", timer_enabled = true)]
async fn a_refused_certificate_reaches_the_server_as_an_alert_not_an_eof_on_the_legacy_driver() {
    alert_reaches_the_server().await;
}

#[test]
fn a_refused_certificate_reaches_the_server_as_an_alert_not_an_eof_on_the_io_uring_driver() {
    on_io_uring(alert_reaches_the_server());
}
