//! HTTP robustness of the master API: malformed and oversized requests, bodies without
//! Content-Type or chunked, keep-alive, and slow or idle clients that must not delay others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::master::*;
use nodepass::master::HttpLimits;

fn timed_get(m: &TestMaster) -> Duration {
    let start = Instant::now();
    let r = m.call("GET", "/instances", None);
    assert_eq!(r.status, 200);
    start.elapsed()
}

#[test]
fn a_malformed_request_line_gets_a_json_400() {
    let (_dir, m) = fake_master("malformed");
    let r = raw_request(m.addr, b"GARBAGE GARBAGE\r\n\r\n");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
}

#[test]
fn oversized_heads_get_431_and_oversized_bodies_413() {
    let (_dir, m) = fake_master("oversized");
    let big = format!(
        "GET /api/v1/instances HTTP/1.1\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    assert_eq!(raw_request(m.addr, big.as_bytes()).status, 431);
    let body = format!(
        "POST /api/v1/instances HTTP/1.1\r\nX-API-Key: {}\r\nContent-Length: {}\r\n\r\n",
        m.key,
        2 * 1024 * 1024
    );
    assert_eq!(raw_request(m.addr, body.as_bytes()).status, 413);
}

#[test]
fn bodies_need_no_content_type_and_may_be_chunked() {
    let (_dir, m) = fake_master("bodies");
    let json = r#"{"url":"client://127.0.0.1:1/127.0.0.1:2"}"#;
    let plain = format!("POST /api/v1/instances HTTP/1.1\r\nX-API-Key: {}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{json}", m.key, json.len());
    assert_eq!(raw_request(m.addr, plain.as_bytes()).status, 201);
    let (a, b) = json.split_at(10);
    let chunked = format!(
        "POST /api/v1/instances HTTP/1.1\r\nX-API-Key: {}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        m.key,
        a.len(),
        b.len()
    );
    assert_eq!(raw_request(m.addr, chunked.as_bytes()).status, 201);
}

/// A chunk size near 2^64 from anyone (no key needed) is refused as too large and the
/// master keeps serving. Found by fuzzing: the size wrapped past the body limit, and the
/// release binary aborted on the slice that followed (one request killed the master).
#[test]
fn a_huge_chunk_size_gets_413_and_the_master_lives_on() {
    let (_dir, m) = fake_master("hugechunk");
    let evil = b"POST /api/v1/instances HTTP/1.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\nffffffffffffffff\r\nabc";
    assert_eq!(raw_request(m.addr, evil).status, 413);
    assert_eq!(m.call("GET", "/instances", None).status, 200);
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405() {
    let (_dir, m) = fake_master("routes");
    assert_eq!(m.call("GET", "/nothing", None).status, 404);
    assert_eq!(request(m.addr, "GET", "/elsewhere", None, None).status, 404);
    assert_eq!(m.call("PUT", "/info", None).status, 405);
    assert_eq!(m.call("POST", "/events", None).status, 405);
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (_dir, m) = fake_master("keepalive");
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..3 {
        write!(
            s,
            "GET /api/v1/instances HTTP/1.1\r\nHost: t\r\nX-API-Key: {}\r\n\r\n",
            m.key
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed early");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .unwrap()
                    .parse()
                    .unwrap();
                if body.len() >= len {
                    assert!(head.starts_with("HTTP/1.1 200"));
                    break;
                }
            }
        }
    }
}

#[test]
fn idle_and_trickling_clients_do_not_delay_a_normal_request() {
    let (_dir, m) = fake_master("slow");
    let baseline = timed_get(&m);
    let idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(m.addr).unwrap())
        .collect();
    let mut slow = TcpStream::connect(m.addr).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let trickler = std::thread::spawn(move || {
        for b in b"GET /api/v1/instances HTTP/1.1\r\n".iter() {
            if stop2.load(std::sync::atomic::Ordering::SeqCst) || slow.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::park_timeout(Duration::from_secs(1));
        }
    });
    for _ in 0..5 {
        let took = timed_get(&m);
        assert!(
            took < baseline + Duration::from_millis(100),
            "a normal request took {took:?} (baseline {baseline:?})"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    trickler.thread().unpark();
    let _ = trickler.join();
    drop(idle);
}

#[test]
fn a_client_that_never_finishes_its_request_is_cut_off() {
    let dir = TempDir::new("cutoff");
    let exe = write_script(&dir.0);
    let mut opts = options(exe, &dir.0.join("state"));
    opts.http = HttpLimits {
        request_timeout: Duration::from_millis(500),
        ..HttpLimits::default()
    };
    let m = TestMaster::start(opts);
    let mut s = TcpStream::connect(m.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /api/v1/inst").unwrap();
    let start = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"));
}

#[test]
fn connections_beyond_the_cap_get_503() {
    let dir = TempDir::new("cap");
    let exe = write_script(&dir.0);
    let mut opts = options(exe, &dir.0.join("state"));
    opts.http = HttpLimits {
        max_connections: 4,
        ..HttpLimits::default()
    };
    let m = TestMaster::start(opts);
    let held: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(m.addr).unwrap())
        .collect();
    let r = poll(Duration::from_secs(3), || {
        let r = m.call("GET", "/instances", None);
        (r.status == 503).then_some(r)
    });
    assert!(r.is_some(), "the 5th connection is refused");
    drop(held);
    assert!(poll(Duration::from_secs(3), || (m
        .call("GET", "/instances", None)
        .status
        == 200)
        .then_some(()))
    .is_some());
}

pub(crate) mod insecure {
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Dashboards never verify the master's certificate (`InsecureSkipVerify`).
    #[derive(Debug)]
    pub struct AcceptAll;

    impl ServerCertVerifier for AcceptAll {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            rustls::crypto::ring::default_provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }
}

#[test]
fn tls_1_serves_the_api_over_https_without_offering_h2() {
    use std::sync::Arc;
    let dir = TempDir::new("tls");
    let exe = write_script(&dir.0);
    let cfg = master_config(nodepass::config::TlsMode::SelfSigned, test_env());
    let m = TestMaster::start_with(cfg, options(exe, &dir.0.join("state")));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(insecure::AcceptAll))
        .with_no_client_auth();
    client.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
    let mut sock = TcpStream::connect(m.addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    write!(
        tls,
        "GET /api/v1/info HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-API-Key: {}\r\n\r\n",
        m.key
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = tls.read_to_end(&mut out);
    assert_ne!(conn.alpn_protocol(), Some(&b"h2"[..]));
    let reply = parse_reply(&out);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["tls"], "1");
}
