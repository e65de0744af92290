//! Pending `auth1` handshakes: a server answers a proved handshake but gives the run only to
//! the first session whose control connection proves the key. A real client's handshake,
//! recorded and replayed after a server restart (when the seen-nonce set is empty again),
//! gets an answer and nothing more; a racing client that knows the key but sends a wrong
//! pool proof is refused. Either way the real client's tunnel comes up at once and
//! carries bytes byte-exact.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use nodepass::proto::auth::Nonce;
use nodepass::proto::handshake::encode_request_ours;

/// Long enough that a run stalled by a replay would still be stalled when the test ends.
const ENV: [(&str, &str); 4] = [
    ("NP_REPORT_INTERVAL", "1s"),
    ("NP_SERVICE_COOLDOWN", "200ms"),
    ("NP_WORKERS", "2"),
    ("NP_HANDSHAKE_TIMEOUT", "60s"),
];

/// How soon the real client's tunnel must be up (it takes milliseconds when nothing stalls
/// it; a stalled run would take the whole handshake timeout).
const UP_WITHIN: Duration = Duration::from_secs(8);

/// A TCP proxy to `upstream` that records what the first connection through it sent (our
/// client's handshake request).
fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&recorded);
    std::thread::spawn(move || {
        for (n, down) in l.incoming().flatten().enumerate() {
            let Ok(up) = TcpStream::connect(upstream) else {
                continue;
            };
            let record = (n == 0).then(|| Arc::clone(&record));
            pipe(down.try_clone().unwrap(), up.try_clone().unwrap(), record);
            pipe(up, down, None);
        }
    });
    (addr, recorded)
}

/// Copy `from` to `to` on a thread, appending what passes to `record` if given.
fn pipe(mut from: TcpStream, mut to: TcpStream, record: Option<Arc<Mutex<Vec<u8>>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if let Some(r) = &record {
                        r.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// One request on a fresh connection to the tunnel port; the server's whole answer.
fn exchange(port: u16, request: &[u8]) -> String {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    String::from_utf8_lossy(&http_exchange(addr, request, STEP)).into_owned()
}

fn server_url(port: u16, target: SocketAddr, tls: &str) -> String {
    format!("server://secret@127.0.0.1:{port}/{target}?mode=2&{tls}")
}

fn client_url(server: SocketAddr, user_port: u16) -> String {
    format!("client://secret@{server}/127.0.0.1:{user_port}?mode=2&min=8")
}

fn start_server(url: &str) -> NodepassProcess {
    let mut server = NodepassProcess::start(url, &ENV);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap_or_else(|| panic!("server did not start: {:?}", server.seen));
    server
}

/// Start a client to `server` and require its tunnel up within [`UP_WITHIN`] and carrying
/// bytes byte-exact (users connect to the client in flow `+`).
fn client_comes_up(server: SocketAddr, what: &str) -> NodepassProcess {
    let user_port = free_port();
    let started = Instant::now();
    let mut client = NodepassProcess::start(&client_url(server, user_port), &ENV);
    client
        .wait_for_line("Marking tunnel handshake as complete", UP_WITHIN)
        .unwrap_or_else(|| panic!("{what}: the client's tunnel is not up: {:?}", client.seen));
    assert!(started.elapsed() < UP_WITHIN, "{what}: up too late");
    let user = SocketAddr::from(([127, 0, 0, 1], user_port));
    for i in 0..8u8 {
        let data = payload(40_000 + usize::from(i) * 999, i);
        assert_eq!(echo_through(user, &data), data, "{what}: user session {i}");
    }
    client
}

fn a_recorded_handshake_replayed_after_a_restart_cannot_keep_the_client_out(tls: &str) {
    let target = echo_tcp();
    let port = free_port();
    let tunnel = SocketAddr::from(([127, 0, 0, 1], port));
    let url = server_url(port, target, tls);
    let mut server = start_server(&url);
    // Record a real client's handshake on its way to the server.
    let (proxy, recorded) = recording_proxy(tunnel);
    let first = client_comes_up(proxy, "first run");
    drop(first);
    let recording = recorded.lock().unwrap().clone();
    assert!(
        String::from_utf8_lossy(&recording).contains("X-Np-Proof: "),
        "an auth1 handshake was recorded"
    );
    // Restart the server: its seen-nonce set is empty again.
    drop(server);
    server = start_server(&url);
    let replayed = exchange(port, &recording);
    assert!(
        replayed.starts_with("HTTP/1.1 200 OK"),
        "the replay proves the key as much as the recording did: {replayed}"
    );
    let _client = client_comes_up(tunnel, "after the replay");
    server
        .wait_for_line("proved the key first", STEP)
        .unwrap_or_else(|| {
            panic!(
                "the replay's session is dropped, in words: {:?}",
                server.seen
            )
        });
    // The replay cannot come back either: its nonce is seen now.
    let again = exchange(port, &recording);
    assert!(again.starts_with("HTTP/1.1 401"), "{again}");
}

#[test]
fn a_recorded_handshake_replayed_after_a_restart_cannot_keep_the_client_out_tls0() {
    a_recorded_handshake_replayed_after_a_restart_cannot_keep_the_client_out("");
}

#[test]
fn a_recorded_handshake_replayed_after_a_restart_cannot_keep_the_client_out_tls1() {
    a_recorded_handshake_replayed_after_a_restart_cannot_keep_the_client_out("tls=1");
}

/// A peer that knows the key: a fresh `auth1` handshake (answered), then a control
/// connection with the magic and a proof of nothing. Returns whether it was given an id.
fn racer_round(port: u16) -> bool {
    let nonce = Nonce::fresh().unwrap();
    let request = encode_request_ours("none", "secret", true, Some("udp16,auth1"), Some(&nonce));
    let _ = exchange(port, &request);
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = s.write_all(b"NPA1");
    let mut id = [0u8; 4];
    if s.read_exact(&mut id).is_err() {
        return false;
    }
    let _ = s.write_all(&[0x5a; 32]);
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    true
}

#[test]
fn a_racing_client_with_a_wrong_pool_proof_does_not_stall_the_run() {
    let target = echo_tcp();
    let port = free_port();
    let tunnel = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = start_server(&server_url(port, target, ""));
    // The racer is there first, and keeps racing while the real client starts.
    assert!(
        racer_round(port),
        "the racer's control connection gets an id"
    );
    let stop = Arc::new(AtomicBool::new(false));
    let racing = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                racer_round(port);
                std::thread::park_timeout(Duration::from_millis(30));
            }
        })
    };
    let client = client_comes_up(tunnel, "next to the racer");
    stop.store(true, Ordering::Relaxed);
    racing.join().unwrap();
    server
        .wait_for_line("wrong proof of the key for 00000000", STEP)
        .unwrap_or_else(|| panic!("the racer is refused, in words: {:?}", server.seen));
    drop(client);
}
