//! Our client against a fake Go v1.14.0 server played byte for byte over raw sockets: the
//! exact request our client sends, Go's reply bytes, 4-byte ids (`00000000` first, then
//! random), the control channel, a `tcp`/`udp` signal relayed byte-exact to the target on
//! both drivers; and with tls=1 the fingerprint exchange — Go's verify race is tolerated,
//! a wrong fingerprint restarts our client.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use nodepass::config::Driver;
use nodepass::proto::{Action, Signal};

const KEY: &str = "mykey";

/// Go's `GET /` for key `mykey` and `sni=tunnel.test`, header order as Go's client writes it.
const GO_REQUEST: &str =
    "GET / HTTP/1.1\r\nHost: tunnel.test\r\nUser-Agent: Go-http-client/1.1\r\n\
    Authorization: Bearer e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f\r\n\
    Accept-Encoding: gzip\r\n\r\n";

/// Go's `http.Server` reply: handler headers sorted, then Date and Content-Length.
fn go_reply(tls: u8) -> Vec<u8> {
    let body = format!("{{\"flow\":\"-\",\"max\":8,\"tls\":\"{tls}\",\"type\":\"0\"}}\n");
    format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Date: Sat, 01 Mar 2025 10:00:00 GMT\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A pool connection the fake server accepted, after its id was written.
struct Accepted {
    id: String,
    stream: Box<dyn Stream>,
    tcp: TcpStream,
}

/// What the fake server's listener sees after the handshake.
enum Seen {
    Pool(Accepted),
    /// A new HTTP handshake (the client restarted).
    Handshake,
}

/// Answer the first connection as Go's handshake handler; returns the request bytes.
fn answer_handshake(listener: &TcpListener, tls: u8) -> Vec<u8> {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(STEP)).unwrap();
    let request = read_http_head(&mut s);
    s.write_all(&go_reply(tls)).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    request
}

/// Accept pool connections forever, each on its own thread (a connection abandoned
/// mid-TLS must not hold up the rest): TLS-accept if `tls` is set, then write the 4-byte
/// id (the first `00000000`, then random-looking and distinct). The counter is how many
/// TLS handshakes resumed a session.
fn accept_pool(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> (mpsc::Receiver<Seen>, Arc<AtomicUsize>) {
    let (tx, rx) = mpsc::channel();
    let resumed = Arc::new(AtomicUsize::new(0));
    let counter = resumed.clone();
    std::thread::spawn(move || {
        for n in 0u32.. {
            let Ok((tcp, _)) = listener.accept() else {
                return;
            };
            let (tx, tls, counter) = (tx.clone(), tls.clone(), counter.clone());
            // The first (the control channel, `00000000`) is served inline so it is
            // always the first one reported.
            if n == 0 {
                if let Some(seen) = pool_conn(n, tcp, tls, &counter) {
                    let _ = tx.send(seen);
                }
                continue;
            }
            std::thread::spawn(move || {
                if let Some(seen) = pool_conn(n, tcp, tls, &counter) {
                    let _ = tx.send(seen);
                }
            });
        }
    });
    (rx, resumed)
}

fn pool_conn(
    n: u32,
    tcp: TcpStream,
    tls: Option<Arc<rustls::ServerConfig>>,
    resumed: &AtomicUsize,
) -> Option<Seen> {
    tcp.set_read_timeout(Some(STEP)).unwrap();
    let mut peek = [0u8; 3];
    if tls.is_some() && tcp.peek(&mut peek).is_ok_and(|k| k == 3) && &peek == b"GET" {
        return Some(Seen::Handshake);
    }
    let id = if n == 0 {
        [0; 4]
    } else {
        (n.wrapping_mul(0x9E37_79B9) | 1).to_be_bytes()
    };
    let raw = tcp.try_clone().unwrap();
    let stream: Box<dyn Stream> = match tls {
        None => {
            let mut tcp = tcp;
            tcp.write_all(&id).ok()?;
            Box::new(tcp)
        }
        Some(cfg) => {
            let conn = rustls::ServerConnection::new(cfg).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            tls.write_all(&id).and_then(|()| tls.flush()).ok()?;
            if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                resumed.fetch_add(1, Ordering::SeqCst);
            }
            Box::new(tls)
        }
    };
    Some(Seen::Pool(Accepted {
        id: id_hex(id),
        stream,
        tcp: raw,
    }))
}

/// The next pool connection accepted within `STEP`.
fn next_pool(rx: &mpsc::Receiver<Seen>) -> Accepted {
    match rx.recv_timeout(STEP).expect("a pool connection") {
        Seen::Pool(a) => a,
        Seen::Handshake => panic!("unexpected handshake"),
    }
}

/// The next accepted pool connection other than `used` (which the client took itself).
fn next_pool_except(rx: &mpsc::Receiver<Seen>, used: Option<&str>) -> Accepted {
    loop {
        let a = next_pool(rx);
        if Some(a.id.as_str()) != used {
            return a;
        }
    }
}

struct FakeGoServer {
    client: NodepassProcess,
    control: FakeControl,
    pool: mpsc::Receiver<Seen>,
    /// Pool connections whose TLS handshake resumed a session.
    resumed: Arc<AtomicUsize>,
    request: Vec<u8>,
}

fn fake_go_server(
    tls: u8,
    target: SocketAddr,
    env: &[(&str, &str)],
) -> (FakeGoServer, Option<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("client://{KEY}@127.0.0.1:{port}/{target}?mode=2&min=4&sni=tunnel.test");
    let mut all = TUNNEL_ENV.to_vec();
    all.extend_from_slice(env);
    let client = NodepassProcess::start(&url, &all);
    let request = answer_handshake(&listener, tls);
    let server_tls = (tls != 0).then(|| nodepass::tls::server_config_self_signed().unwrap());
    let fp = server_tls.as_ref().map(|t| t.fingerprint());
    let (pool, resumed) = accept_pool(listener, server_tls.map(|t| t.config));
    let first = next_pool(&pool);
    assert_eq!(first.id, "00000000");
    first
        .tcp
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let control = FakeControl::start(first.stream, KEY, Duration::from_secs(1));
    let server = FakeGoServer {
        client,
        control,
        pool,
        resumed,
        request,
    };
    (server, fp)
}

fn go_server_against_our_client(driver: &str) {
    let target = echo_tcp_udp();
    let (mut go, _) = fake_go_server(0, target, &[("NP_DRIVER", driver)]);
    // Go's request with our extension headers (marker, auth1 nonce and proof) in Go's
    // sorted header order; a Go server ignores them and answers without a marker, so the
    // run is plain v1.14.0 (the UDP below is unframed).
    let ours = String::from_utf8_lossy(&go.request).into_owned();
    let header = |name: &str| {
        ours.split("\r\n")
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {ours:?}"))
            .to_string()
    };
    let nonce = header("X-Np-Nonce: ");
    let proof = header("X-Np-Proof: ");
    assert_eq!(
        ours,
        GO_REQUEST.replace(
            "\r\nAccept-Encoding",
            &format!(
                "\r\nX-Np-Ext: udp16,auth1\r\nX-Np-Nonce: {nonce}\r\nX-Np-Proof: {proof}\r\nAccept-Encoding"
            )
        )
    );
    let nonce = nodepass::proto::auth::Nonce::from_hex(&nonce).expect("64 hex digits");
    assert_eq!(
        proof,
        nodepass::proto::auth::to_hex(&nodepass::proto::auth::client_proof(KEY, &nonce)),
        "the proof is HMAC(key, client nonce)"
    );
    let without_ours: Vec<&str> = ours
        .split("\r\n")
        .filter(|l| !l.starts_with("X-Np-"))
        .collect();
    assert_eq!(
        without_ours.join("\r\n"),
        GO_REQUEST,
        "Go's bytes otherwise"
    );
    go.control
        .wait_for(STEP, |s| *s == Signal::new(Action::Ping))
        .expect("the client pings at once");
    go.client
        .wait_for_line("CHECK_POINT|MODE=2|PING=", STEP)
        .expect("CHECK_POINT on our pong");
    // tcp: our client dials the target and relays 1 MiB both ways.
    let mut link = next_pool(&go.pool);
    let mut sig = Signal::new(Action::Tcp);
    sig.remote = Some("127.0.0.1:40000".into());
    sig.id = Some(link.id.clone());
    go.control.send(sig);
    let data = payload(1024 * 1024, 21);
    let mut writer = link.tcp.try_clone().unwrap();
    let sent = data.clone();
    let w = std::thread::spawn(move || {
        writer.write_all(&sent).unwrap();
        writer.shutdown(Shutdown::Write).unwrap();
    });
    let mut back = Vec::new();
    link.stream.read_to_end(&mut back).unwrap();
    w.join().unwrap();
    assert!(
        back == data,
        "{} of {} bytes came back intact",
        back.len(),
        data.len()
    );
    // udp: each write is a datagram to the target; each reply comes back as raw bytes.
    let mut link = next_pool(&go.pool);
    let mut sig = Signal::new(Action::Udp);
    sig.remote = Some("127.0.0.1:40001".into());
    sig.id = Some(link.id.clone());
    go.control.send(sig);
    for msg in [&b"one datagram"[..], b"and another"] {
        link.stream.write_all(msg).unwrap();
        let mut got = vec![0u8; msg.len()];
        link.stream.read_exact(&mut got).unwrap();
        assert_eq!(got, msg);
    }
    let errors: Vec<_> = go
        .client
        .seen
        .iter()
        .filter(|l| l.contains("Client error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn our_client_sends_gos_request_and_relays_signalled_sessions_on_uring() {
    go_server_against_our_client("uring");
}

#[test]
fn our_client_sends_gos_request_and_relays_signalled_sessions_on_epoll() {
    go_server_against_our_client("legacy");
}

#[test]
fn tls1_verify_race_is_tolerated_and_a_wrong_fingerprint_restarts_our_client() {
    let env = [("NP_POOL_GET_TIMEOUT", "1s")];
    let (mut go, fp) = fake_go_server(1, echo_tcp_udp(), &env);
    let fp = fp.unwrap();
    // Our client reports what it saw on one idle connection: our certificate.
    let ours = go
        .control
        .wait_for(STEP, |s| s.action == Action::Verify)
        .expect("the client sends verify");
    assert_eq!(ours.fp.as_deref(), Some(fp.as_str()));
    assert_eq!(ours.remote, None);
    // Go's race (§9.23): the server picked the same id. Our client kept that connection
    // (retired, not closed), so the server's check finds it and passes: no restart.
    let mut race = Signal::new(Action::Verify);
    race.id = ours.id.clone();
    race.fp = Some(fp.clone());
    go.control.send(race);
    let verified = |go: &mut FakeGoServer| {
        go.client.take_output();
        go.client
            .seen
            .iter()
            .filter(|l| l.contains("TLS fingerprint verified"))
            .count()
    };
    assert!(
        eventually(STEP, || verified(&mut go) >= 1),
        "the raced connection was not verified: {:#?}",
        go.client.seen
    );
    // A right fingerprint for another idle connection passes too.
    let idle = next_pool_except(&go.pool, ours.id.as_deref());
    let mut good = Signal::new(Action::Verify);
    good.id = Some(idle.id.clone());
    good.fp = Some(fp.clone());
    go.control.send(good);
    assert!(
        eventually(STEP, || verified(&mut go) >= 2),
        "not verified: {:#?}",
        go.client.seen
    );
    let errors: Vec<_> = go
        .client
        .seen
        .iter()
        .filter(|l| l.contains("Client error"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    // A wrong one is fatal: the client restarts and comes back with a new handshake.
    let other = next_pool_except(&go.pool, ours.id.as_deref());
    let mut bad = Signal::new(Action::Verify);
    bad.id = Some(other.id.clone());
    bad.fp = Some(
        fp.replace("sha256:", "sha256:00:")
            .chars()
            .take(fp.len())
            .collect(),
    );
    go.control.send(bad);
    go.client
        .wait_for_line("certificate fingerprint mismatch", STEP)
        .expect("mismatch is an error");
    go.client
        .wait_for_line("Client restart", STEP)
        .expect("restart");
    let again = (0..64).any(|_| matches!(go.pool.recv_timeout(STEP), Ok(Seen::Handshake)));
    assert!(again, "no new handshake after the restart");
    // The server sent a session ticket on every connection (as Go's does); a peer that
    // may be Go is never asked to resume (Go's client never does).
    assert_eq!(
        go.resumed.load(Ordering::SeqCst),
        0,
        "our client resumed with a Go server"
    );
    drop((idle, other));
}

/// A `tcp` signal can name a pool id before our client has read that id from its pool
/// connection (a Go server publishes the id, then sends the signal; the id may still be
/// in flight). The client holds the signal and serves it once the id arrives: here the
/// id is written 300 ms after the signal, and the session still relays byte-exact.
fn a_signal_that_comes_before_its_pool_id_is_served_when_the_id_arrives(driver: Driver) {
    let target = echo_tcp_udp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("client://{KEY}@127.0.0.1:{port}/{target}?mode=2&min=4");
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    let mut client = NodepassProcess::start(&url, &env);
    answer_handshake(&listener, 0);
    let (mut control, _) = listener.accept().unwrap();
    control.write_all(&[0; 4]).unwrap();
    control
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let control = FakeControl::start(control, KEY, Duration::from_secs(1));
    client
        .wait_for_line("Marking tunnel handshake as complete", STEP)
        .expect("control channel up");
    let (mut late, _) = listener.accept().unwrap();
    late.set_read_timeout(Some(STEP)).unwrap();
    // Every other pool connection gets its id at once, and is kept open.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for n in 1u32..64 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let _ = s.write_all(&(n.wrapping_mul(0x9E37_79B9) | 1).to_be_bytes());
            held.push(s);
        }
    });
    let mut sig = Signal::new(Action::Tcp);
    sig.remote = Some("127.0.0.1:40000".into());
    sig.id = Some("deadbeef".into());
    control.send(sig);
    client.watch_output_for(Duration::from_millis(300));
    late.write_all(&[0xde, 0xad, 0xbe, 0xef]).unwrap();
    let data = payload(64 * 1024, 9);
    late.write_all(&data).unwrap();
    late.shutdown(Shutdown::Write).unwrap();
    let mut back = Vec::new();
    late.read_to_end(&mut back).unwrap();
    assert!(
        back == data,
        "{} of {} bytes came back",
        back.len(),
        data.len()
    );
}

on_both_drivers!(a_signal_that_comes_before_its_pool_id_is_served_when_the_id_arrives);
