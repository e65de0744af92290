//! The auth1 extension profile between our own peers (issue: pool connections that prove
//! the key, replay-proof authentication): a wrong-key client and raw connections on the
//! client's host never get a user byte, a replayed handshake is refused, and `auth=strict`
//! refuses a legacy peer on either end. Go's side of the wire is in `tunnel_wire*.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use nodepass::proto::auth::Nonce;
use nodepass::proto::handshake::{encode_request, encode_request_ours};

/// A TCP echo that counts the connections it accepted.
fn counting_echo() -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(move || {
                let mut s = s;
                let mut r = s.try_clone().unwrap();
                let _ = std::io::copy(&mut r, &mut s);
            });
        }
    });
    (addr, seen)
}

/// Raw connections from the client's address that skip the proof: one silent, one with
/// garbage, one with the magic and a wrong proof. Returns them (still open) to read later.
fn raw_intruders(tunnel_port: u16) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for first in [&b""[..], b"\x16\x03\x01garbage", b"NPA1"] {
        let mut s = TcpStream::connect(("127.0.0.1", tunnel_port)).unwrap();
        if !first.is_empty() {
            s.write_all(first).unwrap();
        }
        if first == b"NPA1" {
            let mut id = [0u8; 4];
            if s.read_exact(&mut id).is_ok() {
                let _ = s.write_all(&[0u8; 32]);
            }
        }
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        out.push(s);
    }
    out
}

/// Wait until `p` printed at least `n` lines containing `needle`.
fn lines_with(p: &mut NodepassProcess, needle: &str, n: usize) -> bool {
    poll(STEP, || {
        p.take_output();
        (p.seen.iter().filter(|l| l.contains(needle)).count() >= n).then_some(())
    })
    .is_some()
}

/// How many bytes an intruder's connection received (at most a pool id, or a TLS alert).
fn bytes_received(s: &mut TcpStream) -> usize {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got.len()
}

fn wrong_key_and_raw_intruders_never_get_user_bytes(tls: &str) {
    let (target, _) = counting_echo();
    let opts = TunnelOpts {
        reverse: true,
        server_query: tls,
        client_query: "",
        env: vec![],
    };
    let mut pair = tunnel_pair(&opts, target);
    // A client with the wrong key on the same host, retrying, with its own target.
    let (wrong_target, wrong_hits) = counting_echo();
    let env = TUNNEL_ENV.to_vec();
    let mut wrong = NodepassProcess::start(
        &format!(
            "client://wrongkey@127.0.0.1:{}/{wrong_target}?mode=2&min=8",
            pair.tunnel_port
        ),
        &env,
    );
    wrong
        .wait_for_line("handshake refused with status 401", STEP)
        .expect("the wrong client is refused, and told");
    let mut intruders = raw_intruders(pair.tunnel_port);
    // Users keep coming while the wrong client keeps retrying: every echo byte-exact.
    for round in 0..2u8 {
        assert!(
            lines_with(
                &mut pair.server,
                "refused: 401 Unauthorized",
                usize::from(round) + 2
            ),
            "each retry of the wrong client is refused, in the log: {:?}",
            pair.server.seen
        );
        for i in 0..20u8 {
            let data = payload(16 * 1024 + usize::from(i), i ^ round);
            assert_eq!(
                echo_through(pair.user, &data),
                data,
                "user session {round}/{i}"
            );
        }
    }
    assert_eq!(
        wrong_hits.load(Ordering::SeqCst),
        0,
        "no user reached the wrong client"
    );
    for (i, s) in intruders.iter_mut().enumerate() {
        let got = bytes_received(s);
        assert!(
            got <= 8,
            "intruder {i} read {got} bytes: more than an id or an alert"
        );
    }
    pair.server
        .wait_for_line("pool connection from 127.0.0.1", STEP)
        .expect("raw connections are refused with a reason");
}

#[test]
fn wrong_key_and_raw_intruders_never_get_user_bytes_tls0() {
    wrong_key_and_raw_intruders_never_get_user_bytes("");
}

#[test]
fn wrong_key_and_raw_intruders_never_get_user_bytes_tls1() {
    wrong_key_and_raw_intruders_never_get_user_bytes("tls=1");
}

/// The server's answer to one request on a fresh connection.
fn answer(port: u16, request: &[u8]) -> String {
    String::from_utf8_lossy(&http_exchange(
        SocketAddr::from(([127, 0, 0, 1], port)),
        request,
        STEP,
    ))
    .into_owned()
}

#[test]
fn a_replayed_handshake_is_refused() {
    let port = free_port();
    let mut server = NodepassProcess::start(
        &format!("server://secret@127.0.0.1:{port}/127.0.0.1:1?mode=2"),
        &TUNNEL_ENV,
    );
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap();
    let nonce = Nonce::fresh().unwrap();
    let recorded = encode_request_ours("none", "secret", true, Some("udp16,auth1"), Some(&nonce));
    let first = answer(port, &recorded);
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    assert!(first.contains("\"ext\":\"udp16,auth1\""), "{first}");
    assert!(first.contains("\"proof\":\""), "{first}");
    let replayed = answer(port, &recorded);
    assert!(replayed.starts_with("HTTP/1.1 401"), "{replayed}");
    server
        .wait_for_line("a replayed handshake", STEP)
        .expect("the replay is named in the log");
}

#[test]
fn a_strict_server_refuses_a_legacy_client_and_takes_ours() {
    let port = free_port();
    let mut server = NodepassProcess::start(
        &format!("server://secret@127.0.0.1:{port}/127.0.0.1:1?mode=2&auth=strict"),
        &TUNNEL_ENV,
    );
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap();
    // Go's exact request: right key, no profile.
    let legacy = answer(port, &encode_request("none", "secret", None));
    assert!(legacy.starts_with("HTTP/1.1 401"), "{legacy}");
    server
        .wait_for_line("a legacy client (no auth1 profile", STEP)
        .expect("the reason is logged");
    // Ours, without the static token at all (what a strict client sends).
    let nonce = Nonce::fresh().unwrap();
    let ours = answer(
        port,
        &encode_request_ours("none", "secret", false, Some("udp16,auth1"), Some(&nonce)),
    );
    assert!(ours.starts_with("HTTP/1.1 200 OK"), "{ours}");
}

#[test]
fn a_strict_client_refuses_a_server_without_the_profile() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = NodepassProcess::start(
        &format!("client://secret@127.0.0.1:{port}/127.0.0.1:1?mode=2&auth=strict"),
        &TUNNEL_ENV,
    );
    // A Go server: reads the request, answers without any marker.
    let mut s = accept_one(&listener);
    let request = String::from_utf8_lossy(&read_http_head(&mut s)).into_owned();
    let body = "{\"flow\":\"+\",\"max\":8,\"tls\":\"0\",\"type\":\"0\"}\n";
    answer_with_json(s, body);
    assert!(
        !request.contains("Authorization"),
        "strict sends no static token: {request}"
    );
    assert!(request.contains("X-Np-Proof: "), "{request}");
    client
        .wait_for_line("does not speak the auth1 profile", STEP)
        .expect("the downgrade is refused, in words");
}

#[test]
fn a_server_that_cannot_prove_the_key_is_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = NodepassProcess::start(
        &format!("client://secret@127.0.0.1:{port}/127.0.0.1:1?mode=2"),
        &TUNNEL_ENV,
    );
    // Claims the profile with a made-up proof (someone in between, or a wrong key).
    let mut s = accept_one(&listener);
    let _ = read_http_head(&mut s);
    let body = format!(
        "{{\"ext\":\"udp16,auth1\",\"flow\":\"+\",\"max\":8,\"nonce\":\"{}\",\"proof\":\"{}\",\"tls\":\"0\",\"type\":\"0\"}}\n",
        "11".repeat(32),
        "22".repeat(32)
    );
    answer_with_json(s, &body);
    client
        .wait_for_line("the server did not prove the tunnel key", STEP)
        .expect("refused, in words");
}

/// A target that reads until the user's EOF, then answers with how many bytes it got: it
/// works through a tunnel only if the user's half-close reaches it and the way back stays
/// open.
fn count_then_answer() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut got = Vec::new();
                if s.read_to_end(&mut got).is_ok() {
                    let _ = s.write_all(format!("got {} bytes", got.len()).as_bytes());
                }
            });
        }
    });
    addr
}

/// Between our peers a user's half-close travels end to end, both flows, tls 0 and 1
/// (Go drops it, PROTOCOL.md §9.15).
fn half_close_travels_end_to_end(reverse: bool, tls: &str) {
    let target = count_then_answer();
    let opts = TunnelOpts {
        reverse,
        server_query: tls,
        client_query: "",
        env: vec![],
    };
    let pair = tunnel_pair(&opts, target);
    for size in [0usize, 1, 70_000] {
        let mut s = connect(pair.user);
        s.set_read_timeout(Some(STEP)).unwrap();
        s.write_all(&payload(size, 3)).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert_eq!(
            answer,
            format!("got {size} bytes"),
            "reverse={reverse} {tls}"
        );
    }
}

#[test]
fn half_close_travels_end_to_end_forward_tls0() {
    half_close_travels_end_to_end(false, "");
}

#[test]
fn half_close_travels_end_to_end_reverse_tls0() {
    half_close_travels_end_to_end(true, "");
}

#[test]
fn half_close_travels_end_to_end_forward_tls1() {
    half_close_travels_end_to_end(false, "tls=1");
}

#[test]
fn half_close_travels_end_to_end_reverse_tls1() {
    half_close_travels_end_to_end(true, "tls=1");
}

/// Accept our client's handshake connection on a fake server.
fn accept_one(listener: &TcpListener) -> TcpStream {
    let (s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    s
}

/// Answer a handshake as a server does: 200 with this JSON body, then close.
fn answer_with_json(mut s: TcpStream, body: &str) {
    let reply = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(reply.as_bytes()).unwrap();
}

/// tls=1 between our peers: the certificate a pool connection shows must be the one the
/// server proved in its handshake reply. Someone in between who knows the key but serves
/// another certificate (here: a fake server proving one fingerprint and presenting a
/// different certificate) is refused by the client, and the run restarts.
#[test]
fn a_pool_certificate_other_than_the_proved_one_is_refused() {
    use nodepass::proto::auth::{self, Announced, Session};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut client = NodepassProcess::start(
        &format!("client://secret@127.0.0.1:{port}/127.0.0.1:1?mode=2"),
        &TUNNEL_ENV,
    );
    let mut s = accept_one(&listener);
    let head = String::from_utf8_lossy(&read_http_head(&mut s)).into_owned();
    let client_nonce = head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("X-Np-Nonce: "))
        .and_then(Nonce::from_hex)
        .expect("our client sends its nonce");
    let proved = nodepass::tls::server_config_self_signed().unwrap();
    let presented = nodepass::tls::server_config_self_signed().unwrap();
    assert_ne!(proved.fingerprint(), presented.fingerprint());
    let session = Session {
        client: client_nonce,
        server: Nonce([5; 32]),
    };
    let announced = Announced {
        flow: "+",
        max: 8,
        tls: 1,
        pool_type: 0,
    };
    let proof = session.server_proof("secret", announced, &proved.fingerprint());
    let body = format!(
        "{{\"ext\":\"udp16,auth1\",\"flow\":\"+\",\"fp\":\"{}\",\"max\":8,\"nonce\":\"{}\",\"proof\":\"{}\",\"tls\":\"1\",\"type\":\"0\"}}\n",
        proved.fingerprint(),
        session.server.to_hex(),
        auth::to_hex(&proof)
    );
    answer_with_json(s, &body);
    // Pool connections get the other certificate.
    let config = presented.config.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten().take(64) {
            let config = config.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut magic = [0u8; 4];
                let _ = tls.read_exact(&mut magic);
            });
        }
    });
    client
        .wait_for_line("not the sha256", STEP)
        .expect("the swapped certificate is named");
    client
        .wait_for_line("Client error", STEP)
        .expect("the run ends and restarts");
}
