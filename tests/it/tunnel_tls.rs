//! tls=2 with the real binary, as a user sets it up with openssl's most common self-signed
//! certificate (`CA:TRUE`, SANs `DNS:localhost, IP:127.0.0.1`; made here with rcgen, and
//! with the `openssl` CLI too when it is installed): the client trusts it through
//! `SSL_CERT_FILE` and random bytes come back byte for byte. A wrong `sni=` or a
//! certificate the client does not trust fails with a log line naming the cause on both
//! ends.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// The equivalent of `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
/// -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1`:
/// self-signed, `CA:TRUE` (openssl's default), ECDSA P-256, valid from yesterday for 2 days.
fn rcgen_cert(dir: &TempDir) -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let day = 24 * 3600;
    let (y, m, d) = civil_date(now - day);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_date(now + 2 * day);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = params.self_signed(&key).expect("self-signed");
    let (crt, key_path) = (dir.path("c.pem"), dir.path("k.pem"));
    std::fs::write(&crt, cert.pem()).expect("write crt");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (crt, key_path)
}

/// The UTC calendar date (year, month, day) of a Unix time (the crate's own calendar code).
fn civil_date(unix_secs: u64) -> (i32, u8, u8) {
    let t = nodepass::logging::utc_fields(i64::try_from(unix_secs).expect("time"));
    (t.year, t.month, t.day)
}

/// The certificate from the issue, made by the openssl CLI; None when it is not installed.
fn openssl_cert(dir: &TempDir) -> Option<(String, String)> {
    let (crt, key) = (dir.path("c.pem"), dir.path("k.pem"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    status.success().then_some((crt, key))
}

/// `len` random bytes.
fn random_bytes(len: usize) -> Vec<u8> {
    let mut h = RandomState::new().build_hasher();
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while out.len() < len {
        h.write_u64(i);
        out.extend_from_slice(&h.finish().to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

struct Ends {
    server: NodepassProcess,
    client: NodepassProcess,
    user: SocketAddr,
}

/// The reverse tunnel with tls=2: server in mode 1 serving `crt`/`key`, client in
/// mode 2 connecting to an echo, `sni`, and `SSL_CERT_FILE` when `trust` is given; both
/// on `driver` (`NP_DRIVER`).
fn start(crt: &str, key: &str, sni: &str, trust: Option<&str>, driver: &str) -> Ends {
    let echo = echo_tcp_udp();
    let (tun, user) = (free_port(), free_port());
    let mut env: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", driver));
    if let Some(ca) = trust {
        env.push(("SSL_CERT_FILE", ca));
    }
    let server_url =
        format!("server://k3y@127.0.0.1:{tun}/127.0.0.1:{user}?mode=1&tls=2&crt={crt}&key={key}");
    let client_url = format!("client://k3y@127.0.0.1:{tun}/{echo}?mode=2&min=8&sni={sni}");
    let mut server = NodepassProcess::start(&server_url, &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap_or_else(|| panic!("server did not start: {:#?}", server.seen));
    let client = NodepassProcess::start(&client_url, &env);
    Ends {
        server,
        client,
        user: SocketAddr::from(([127, 0, 0, 1], user)),
    }
}

/// The tunnel comes up and random bytes come back unchanged.
fn carries(crt: &str, key: &str, driver: &str) {
    let mut ends = start(crt, key, "localhost", Some(crt), driver);
    for (name, p) in [("server", &mut ends.server), ("client", &mut ends.client)] {
        p.wait_for_line("Marking tunnel handshake as complete", STEP)
            .unwrap_or_else(|| panic!("{name}: no tunnel: {:#?}", p.seen));
    }
    for len in [1, 4096, 1 << 20] {
        let data = random_bytes(len);
        let back = echo_through(ends.user, &data);
        assert!(
            back == data,
            "{len} random bytes: {} came back, not the same",
            back.len()
        );
    }
    for p in [&mut ends.server, &mut ends.client] {
        // Lines printed just after the last echo: no TLS failure among them either.
        p.watch_output_for(Duration::from_millis(50));
        let failures: Vec<_> = p.seen.iter().filter(|l| l.contains("TLS")).collect();
        assert!(
            failures.iter().all(|l| !l.contains("failed")),
            "{failures:#?}"
        );
    }
}

/// Waits for a line on `p` containing every one of `needles`.
fn expect_line(p: &mut NodepassProcess, who: &str, needles: &[&str]) -> String {
    let found = eventually(STEP, || {
        let _ = p.wait_for_line(needles[0], Duration::from_millis(100));
        p.seen.iter().any(|l| needles.iter().all(|n| l.contains(n)))
    });
    assert!(found, "{who}: no line with {needles:?} in {:#?}", p.seen);
    p.seen
        .iter()
        .find(|l| needles.iter().all(|n| l.contains(n)))
        .cloned()
        .unwrap_or_default()
}

#[test]
fn tls2_carries_bytes_with_an_openssl_style_self_signed_ca_certificate_on_uring() {
    let dir = TempDir::new("ok-uring");
    let (crt, key) = rcgen_cert(&dir);
    carries(&crt, &key, "uring");
}

#[test]
fn tls2_carries_bytes_with_an_openssl_style_self_signed_ca_certificate_on_epoll() {
    let dir = TempDir::new("ok-epoll");
    let (crt, key) = rcgen_cert(&dir);
    carries(&crt, &key, "legacy");
}

#[test]
fn tls2_carries_bytes_with_a_certificate_from_the_openssl_cli() {
    let dir = TempDir::new("openssl");
    let Some((crt, key)) = openssl_cert(&dir) else {
        eprintln!("openssl CLI not installed; the rcgen test covers the same certificate");
        return;
    };
    carries(&crt, &key, "uring");
}

fn wrong_sni_is_named(driver: &str) {
    let dir = TempDir::new(&format!("sni-{driver}"));
    let (crt, key) = rcgen_cert(&dir);
    let mut ends = start(&crt, &key, "wrong.test", Some(&crt), driver);
    let line = expect_line(&mut ends.client, "client", &["name mismatch", "wrong.test"]);
    assert!(line.contains("TLS handshake failed"), "{driver}: {line}");
    expect_line(
        &mut ends.server,
        "server",
        &[
            "TLS handshake failed",
            "BadCertificate",
            "rejected our certificate",
        ],
    );
}

fn untrusted_certificate_is_named(driver: &str) {
    let dir = TempDir::new(&format!("untrusted-{driver}"));
    let (crt, key) = rcgen_cert(&dir);
    let mut ends = start(&crt, &key, "localhost", None, driver);
    let line = expect_line(&mut ends.client, "client", &["unknown issuer"]);
    assert!(line.contains("TLS handshake failed"), "{driver}: {line}");
    expect_line(
        &mut ends.server,
        "server",
        &[
            "TLS handshake failed",
            "UnknownCA",
            "does not trust our certificate",
        ],
    );
    assert!(
        ends.client
            .seen
            .iter()
            .all(|l| !l.contains("Marking tunnel handshake as complete")),
        "{driver}: a tunnel formed with an untrusted certificate"
    );
}

#[test]
fn tls2_with_a_wrong_sni_says_name_mismatch_on_the_client_and_the_alert_on_the_server_on_uring() {
    wrong_sni_is_named("uring");
}

#[test]
fn tls2_with_a_wrong_sni_says_name_mismatch_on_the_client_and_the_alert_on_the_server_on_epoll() {
    wrong_sni_is_named("legacy");
}

#[test]
fn tls2_with_an_untrusted_certificate_says_unknown_issuer_and_the_alert_on_uring() {
    untrusted_certificate_is_named("uring");
}

#[test]
fn tls2_with_an_untrusted_certificate_says_unknown_issuer_and_the_alert_on_epoll() {
    untrusted_certificate_is_named("legacy");
}
