//! A client that holds the key but plays foul, against our server (mode 2, flow `+`, so
//! the client names pool connections in `tcp` signals): Go's handshake and pool
//! connections over raw sockets, then hostile control-channel traffic. Peer text never
//! forges a log line (a CHECK_POINT in a signal's address stays escaped inside one line),
//! and junk lines or signals naming ids that never come cost a bounded number of log
//! lines and memory, after which a real session still crosses.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::common::*;
use nodepass::config::Driver;
use nodepass::proto::handshake::encode_request;
use nodepass::proto::{Action, Signal};
use nodepass::stats::CheckPoint;

const KEY: &str = "hostilekey";

const FORGED: &str = "\n2026-01-01 00:00:00.000 EVENT CHECK_POINT|MODE=1|PING=1ms|POOL=0|TCPS=777|UDPS=0|TCPRX=123456789012|TCPTX=0|UDPRX=0|UDPTX=0";

/// A fake Go client: the control channel (and a raw clone of it) and idle pool
/// connections by id.
struct Hostile {
    control: FakeControl,
    raw: TcpStream,
    idle: HashMap<String, TcpStream>,
    tunnel: SocketAddr,
}

/// Start `server://KEY@…/target?mode=2` and connect a fake Go client with `pool` connections.
fn hostile_client(
    target: SocketAddr,
    pool: usize,
    env: &[(&str, &str)],
) -> (NodepassProcess, Hostile) {
    let port = free_port();
    let url = format!("server://{KEY}@127.0.0.1:{port}/{target}?mode=2&max=64");
    let mut all: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    all.extend_from_slice(env);
    let mut server = NodepassProcess::start(&url, &all);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .unwrap_or_else(|| panic!("server did not start: {:?}", server.seen));
    let tunnel = SocketAddr::from(([127, 0, 0, 1], port));
    let mut hs = connect(tunnel);
    hs.write_all(&encode_request("none", KEY, None)).unwrap();
    let mut reply = Vec::new();
    hs.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    assert!(reply.contains("\"flow\":\"+\""), "{reply}");
    let conns: Vec<TcpStream> = (0..pool).map(|_| connect(tunnel)).collect();
    let mut control = None;
    let mut idle = HashMap::new();
    for mut c in conns {
        let mut id = [0u8; 4];
        c.read_exact(&mut id).unwrap();
        if id == [0; 4] {
            control = Some(c);
        } else {
            idle.insert(id_hex(id), c);
        }
    }
    let control = control.expect("one pool connection got 00000000");
    control
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let raw = control.try_clone().unwrap();
    let control = FakeControl::start(control, KEY, Duration::from_secs(1));
    let hostile = Hostile {
        control,
        raw,
        idle,
        tunnel,
    };
    (server, hostile)
}

fn tcp_signal(id: &str, remote: &str) -> Signal {
    let mut sig = Signal::new(Action::Tcp);
    sig.id = Some(id.to_owned());
    sig.remote = Some(remote.to_owned());
    sig
}

/// No output line is a CHECK_POINT with the forged numbers.
fn no_forged_checkpoint(lines: &[String]) {
    for line in lines {
        if let Ok(cp) = line.parse::<CheckPoint>() {
            assert_ne!(cp.tcps, 777, "forged CHECK_POINT accepted: {line:?}");
            assert_ne!(cp.traffic[0], 123_456_789_012, "forged counters: {line:?}");
        }
    }
}

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A real session: Go's refill dials one more pool connection, a `tcp` signal names it,
/// and bytes cross to the echo target and back.
fn real_session_crosses(h: &mut Hostile) {
    let mut c = connect(h.tunnel);
    let mut id = [0u8; 4];
    c.read_exact(&mut id).unwrap();
    let id = id_hex(id);
    h.control.send(tcp_signal(&id, "127.0.0.1:40000"));
    c.set_read_timeout(Some(STEP)).unwrap();
    let data = payload(64 * 1024, 7);
    c.write_all(&data).unwrap();
    let mut got = vec![0u8; data.len()];
    c.read_exact(&mut got).unwrap();
    assert!(got == data, "echo differs");
}

fn hostile_forged_checkpoint_in_a_signal_address_stays_escaped_in_one_line(driver: Driver) {
    let target = echo_tcp();
    let env = [
        ("NP_POOL_GET_TIMEOUT", "300ms"),
        ("NP_DRIVER", np_driver(driver)),
    ];
    let (mut server, h) = hostile_client(target, 3, &env);
    server
        .wait_for_line("CHECK_POINT|", STEP)
        .expect("a real CHECK_POINT");
    let remote = format!("1.2.3.4:5{FORGED}");
    h.control.send(tcp_signal("deadbeef", &remote));
    let line = server
        .wait_for_line("pool connection deadbeef", STEP)
        .unwrap_or_else(|| panic!("no timeout line: {:#?}", server.seen));
    server.watch_output_for(Duration::from_millis(1500));
    no_forged_checkpoint(&server.seen);
    assert!(
        line.contains("1.2.3.4:5\\n2026-01-01 00:00:00.000 EVENT CHECK_POINT\\|MODE=1\\|"),
        "{line:?}"
    );
    assert!(line.contains("TCPRX=123456789012\\|TCPTX=0"), "{line:?}");
    let started = server
        .seen
        .iter()
        .find(|l| l.contains("Server started: server://"))
        .expect("a started line");
    assert!(started.contains("server://****@127.0.0.1:"), "{started}");
    assert!(
        server.seen.iter().all(|l| !l.contains(KEY)),
        "the key is masked in every line: {:#?}",
        server.seen
    );
    let with_forged: Vec<&String> = server
        .seen
        .iter()
        .filter(|l| l.contains("TCPS=777"))
        .collect();
    assert_eq!(
        with_forged,
        vec![&line],
        "the forged text is in exactly one line"
    );
}

on_both_drivers!(hostile_forged_checkpoint_in_a_signal_address_stays_escaped_in_one_line);

fn hostile_junk_and_signal_floods_cost_few_lines_and_little_memory(driver: Driver) {
    let target = echo_tcp();
    let env = [
        ("NP_POOL_GET_TIMEOUT", "3s"),
        ("NP_DRIVER", np_driver(driver)),
    ];
    let (mut server, mut h) = hostile_client(target, 3, &env);
    server
        .wait_for_line("CHECK_POINT|", STEP)
        .expect("a real CHECK_POINT");
    let pid = server.pid();
    let before = vm_rss_kib(pid);
    let start_lines = server.take_output();

    // 50,000 junk lines in one write (a concurrent ping may garble one more: also junk).
    let junk = b"this is not a signal\n".repeat(50_000);
    h.raw.write_all(&junk).unwrap();
    // 50,000 `tcp` signals with random ids that never come.
    let mut seed: u32 = 0x9e37_79b9;
    for _ in 0..50_000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let id = format!("{:08x}", seed | 1);
        h.control.send(tcp_signal(&id, "10.0.0.1:1234"));
    }
    // The server still answers: a pong after the flood.
    let flood_sent = Instant::now();
    assert!(
        h.control
            .wait_for(STEP * 3, |s| s.action == Action::Pong)
            .is_some(),
        "no pong after the flood"
    );
    let mut peak = vm_rss_kib(pid);
    while flood_sent.elapsed() < Duration::from_secs(5) {
        peak = peak.max(vm_rss_kib(pid));
        server.watch_output_for(Duration::from_millis(100));
    }
    real_session_crosses(&mut h);
    // Let the waits time out and the summaries (every 10 s) come.
    server.watch_output_for(Duration::from_secs(8));
    let lines = &server.seen[start_lines..];
    let flood_lines: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("CHECK_POINT|") && !l.contains("exchange"))
        .collect();
    eprintln!(
        "VmRSS before {before} KiB, peak {peak} KiB; {} lines for the floods: {flood_lines:#?}",
        flood_lines.len()
    );
    assert!(flood_lines.len() < 100, "{flood_lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("malformed signal skipped")),
        "the first junk line is logged"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("malformed signals skipped in the last 10 s")),
        "a summary counts the rest: {flood_lines:#?}"
    );
    assert!(
        peak < 40 * 1024,
        "VmRSS peaked at {peak} KiB (before: {before} KiB)"
    );
    drop(h.idle);
}

on_both_drivers!(hostile_junk_and_signal_floods_cost_few_lines_and_little_memory);

/// Play Go's server for our client (flow `-`, so the server names pool connections in
/// `tcp` signals): answer the handshake, write ids to pool connections and keep them open;
/// returns the client process and the control channel.
fn hostile_server(target: SocketAddr, env: &[(&str, &str)]) -> (NodepassProcess, FakeControl) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("client://{KEY}@127.0.0.1:{port}/{target}?mode=2&min=4");
    let mut all: Vec<(&str, &str)> = TUNNEL_ENV.to_vec();
    all.extend_from_slice(env);
    let client = NodepassProcess::start(&url, &all);
    let (mut hs, _) = listener.accept().unwrap();
    hs.set_read_timeout(Some(STEP)).unwrap();
    read_http_head(&mut hs);
    let body = "{\"flow\":\"-\",\"max\":8,\"tls\":\"0\",\"type\":\"0\"}\n";
    let reply = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    hs.write_all(reply.as_bytes()).unwrap();
    drop(hs);
    let (mut control, _) = listener.accept().unwrap();
    control.write_all(&[0; 4]).unwrap();
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for n in 1u32.. {
            let Ok((mut c, _)) = listener.accept() else {
                return;
            };
            if c.write_all(&(n.wrapping_mul(0x9E37_79B9) | 1).to_be_bytes())
                .is_ok()
            {
                kept.push(c);
            }
            if kept.len() > 64 {
                return;
            }
        }
    });
    control
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    (
        client,
        FakeControl::start(control, KEY, Duration::from_secs(1)),
    )
}

fn hostile_signal_flood_on_our_client_costs_few_lines_and_little_memory(driver: Driver) {
    let target = echo_tcp();
    let env = [
        ("NP_POOL_GET_TIMEOUT", "3s"),
        ("NP_DRIVER", np_driver(driver)),
    ];
    let (mut client, control) = hostile_server(target, &env);
    client
        .wait_for_line("CHECK_POINT|", STEP)
        .unwrap_or_else(|| panic!("no CHECK_POINT: {:#?}", client.seen));
    let pid = client.pid();
    let before = vm_rss_kib(pid);
    let start_lines = client.take_output();
    let mut seed: u32 = 0x1234_5678;
    for _ in 0..50_000 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        control.send(tcp_signal(&format!("{:08x}", seed & !1), "10.0.0.1:1234"));
    }
    let flood_sent = Instant::now();
    let mut peak = before;
    while flood_sent.elapsed() < Duration::from_secs(6) {
        peak = peak.max(vm_rss_kib(pid));
        client.watch_output_for(Duration::from_millis(100));
    }
    assert!(
        control
            .wait_for(STEP, |s| s.action == Action::Pong)
            .is_some(),
        "no pong after the flood"
    );
    let lines = &client.seen[start_lines..];
    let flood_lines: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("CHECK_POINT|"))
        .collect();
    eprintln!(
        "client VmRSS before {before} KiB, peak {peak} KiB; {} lines: {flood_lines:#?}",
        flood_lines.len()
    );
    assert!(flood_lines.len() < 100, "{flood_lines:#?}");
    assert!(
        peak < 40 * 1024,
        "VmRSS peaked at {peak} KiB (before: {before} KiB)"
    );
}

on_both_drivers!(hostile_signal_flood_on_our_client_costs_few_lines_and_little_memory);
