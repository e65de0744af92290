//! Hostile peers on the tunnel port and the master API (issue 10, part 2): a flood of
//! silent, garbage and bad-path connections from the client's own host neither delays the
//! real client's handshake nor starves its pool, and the server's descriptors stay
//! bounded; 1100 idle connections do not lock an authenticated caller out of the master.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::master::fake_master;
use crate::common::*;
use nodepass::config::Driver;

/// The client's host.
const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// Connections a flood keeps open at once (three in four of them silent: 900, far more
/// than the client host's cap of 256 + max waiting connections).
const HELD: usize = 1200;

/// A flood from 127.0.0.1 against `addr`: of every eight connections one sends garbage
/// bytes, one a bad-path GET, the rest stay silent (slowloris); the newest [`HELD`] stay
/// open.
struct Flood {
    stop: Arc<AtomicBool>,
    made: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Flood {
    fn start(addr: SocketAddr, from: IpAddr) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicUsize::new(0));
        let (s, m) = (Arc::clone(&stop), Arc::clone(&made));
        let thread = std::thread::spawn(move || {
            let mut held = VecDeque::new();
            let mut i = 0usize;
            while !s.load(Ordering::Relaxed) {
                let Ok(mut c) = connect_from(from, addr) else {
                    continue;
                };
                let _ = match i % 8 {
                    1 => c.write_all(b"\x16\x03\x01\x00garbage\r\n\r\n"),
                    2 => c.write_all(b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"),
                    _ => Ok(()),
                };
                held.push_back(c);
                if held.len() > HELD {
                    held.pop_front();
                }
                i += 1;
                m.store(i, Ordering::Relaxed);
                if i % 64 == 0 {
                    // Leave the CPU to the processes under test now and then (2 cores).
                    std::thread::park_timeout(Duration::from_millis(2));
                }
            }
        });
        Flood {
            stop,
            made,
            thread: Some(thread),
        }
    }

    fn made(&self) -> usize {
        self.made.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A TCP connection to `addr` from the address `from` (any 127.x.y.z is loopback).
fn connect_from(from: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&addr.into(), Duration::from_secs(1))?;
    Ok(s.into())
}

/// Samples the descriptors of `pid` every 20 ms; the peak comes back at the end.
fn watch_fds(pid: u32, stop: Arc<AtomicBool>) -> JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut peak = 0;
        while !stop.load(Ordering::Relaxed) {
            peak = peak.max(open_fds(pid));
            std::thread::park_timeout(Duration::from_millis(20));
        }
        peak
    })
}

on_both_drivers!(a_flood_on_the_tunnel_port_neither_delays_the_handshake_nor_starves_the_pool);

fn a_flood_on_the_tunnel_port_neither_delays_the_handshake_nor_starves_the_pool(driver: Driver) {
    let echo = echo_tcp_udp();
    let o = TunnelOpts {
        reverse: true,
        // The client's host may have `max` pool connections waiting on top of the per-IP
        // cap (its burst after the handshake), so the bound below is 256 + max + the pool.
        server_query: "max=64",
        client_query: "",
        env: vec![],
    };
    let (tunnel_port, user_port) = (free_port(), free_port());
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    let mut server =
        NodepassProcess::start(&tunnel_server_url(&o, tunnel_port, user_port, echo), &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .expect("server up");
    let stop_fds = Arc::new(AtomicBool::new(false));
    let fds = watch_fds(server.pid(), Arc::clone(&stop_fds));
    let flood = Flood::start(SocketAddr::from(([127, 0, 0, 1], tunnel_port)), LOCAL);
    assert!(eventually(STEP, || flood.made() >= HELD), "flood running");

    let started = Instant::now();
    let mut client =
        NodepassProcess::start(&tunnel_client_url(&o, tunnel_port, user_port, echo), &env);
    let line = client
        .wait_for_line("Marking tunnel handshake as complete", STEP)
        .unwrap_or_else(|| panic!("no handshake under the flood: {:?}", client.seen));
    let wall = started.elapsed();
    let ms: u64 = line
        .split(" in ")
        .nth(1)
        .and_then(|s| s.trim_end_matches("ms").trim().parse().ok())
        .unwrap_or(u64::MAX);
    eprintln!(
        "handshake under a flood of {} connections: {ms} ms (log), {wall:?} from the client's start",
        flood.made()
    );
    assert!(ms < 1000, "handshake took {ms} ms: {line}");
    assert!(wall < Duration::from_secs(2), "client up after {wall:?}");

    let user = SocketAddr::from(([127, 0, 0, 1], user_port));
    for i in 0..20 {
        let data = payload(16 * 1024 + i * 1000, i as u8);
        assert!(echo_through(user, &data) == data, "echo {i} byte-exact");
    }
    let during = flood.made();
    drop(flood);
    stop_fds.store(true, Ordering::Relaxed);
    let peak = fds.join().expect("fd watcher");
    eprintln!("server descriptors: peak {peak} during a flood of {during} connections");
    // 256 + max waiting (the client host's cap) + the pool (max) + listeners and the
    // runtime's own, plus evicted sockets whose tasks have not run yet on a loaded machine
    // (~360 seen alone, up to ~510 beside the whole suite); without the caps the flood's
    // 900 silent connections would all be held.
    assert!(peak < 700, "server held {peak} descriptors");
    assert!(
        server
            .wait_for_line("had not proved themselves closed over the caps", STEP)
            .is_some(),
        "summary line: {:?}",
        server.seen
    );
}

#[test]
fn idle_connections_do_not_lock_an_authenticated_caller_out_of_the_master() {
    let (_dir, m) = fake_master("hostile-master");
    let mut events = m.events();
    let idle: Vec<TcpStream> = (0..1100)
        .map(|_| TcpStream::connect_timeout(&m.addr, STEP).expect("idle connection"))
        .collect();
    let started = Instant::now();
    let reply = m.call("GET", "/info", None);
    let took = started.elapsed();
    eprintln!(
        "GET /info behind 1100 idle connections: {} in {took:?}",
        reply.status
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(took < Duration::from_secs(2), "answered after {took:?}");

    // Every idle connection is closed: the oldest at once (over the caps), the rest after
    // the 5 s wait for a first request.
    let deadline = Instant::now() + Duration::from_secs(8);
    for mut s in idle {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        let mut byte = [0u8; 1];
        match s.read(&mut byte) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!(
                "idle connection still open after {:?}: {other:?}",
                started.elapsed()
            ),
        }
    }
    eprintln!(
        "all idle connections closed {:?} after the call",
        started.elapsed()
    );
    // The event stream (a request was made on it) outlives the short wait.
    let _ = events.next_frame(Duration::from_millis(200));
    assert!(!events.ended, "the event stream was cut");
    assert_eq!(m.call("GET", "/info", None).status, 200);
}

on_both_drivers!(a_go_client_handshakes_at_once_under_a_flood_and_gets_its_pool);

/// Go's client (played over raw sockets, as in `tunnel_wire.rs`): its handshake request
/// is answered at once while another host floods the port, and its pool connections get
/// their ids while the flood goes on (now refused at once: not the client's IP).
fn a_go_client_handshakes_at_once_under_a_flood_and_gets_its_pool(driver: Driver) {
    use nodepass::proto::handshake::encode_request;
    let (tunnel_port, user_port) = (free_port(), free_port());
    let url = format!("server://mykey@127.0.0.1:{tunnel_port}/127.0.0.1:{user_port}?mode=1&max=64");
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    let mut server = NodepassProcess::start(&url, &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .expect("server up");
    let tunnel = SocketAddr::from(([127, 0, 0, 1], tunnel_port));
    // From another host (127.0.0.2): on the client's own host a silent stranger can take
    // the control channel from a Go client (NodePass's protocol has no proof there).
    let flood = Flood::start(tunnel, IpAddr::from([127, 0, 0, 2]));
    assert!(eventually(STEP, || flood.made() >= HELD), "flood running");

    let started = Instant::now();
    let mut hs = connect(tunnel);
    hs.write_all(&encode_request("none", "mykey", None))
        .expect("request");
    let mut reply = Vec::new();
    hs.read_to_end(&mut reply).expect("reply");
    let took = started.elapsed();
    let reply = String::from_utf8_lossy(&reply);
    eprintln!("Go handshake under a flood of {}: {took:?}", flood.made());
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(took < Duration::from_secs(1), "handshake took {took:?}");

    // Go dials its refill round in parallel and sends nothing; every one gets its id.
    let conns: Vec<TcpStream> = (0..8).map(|_| connect(tunnel)).collect();
    let mut control = 0;
    for mut c in conns {
        let mut id = [0u8; 4];
        c.read_exact(&mut id).expect("pool id");
        control += usize::from(id == [0; 4]);
    }
    assert_eq!(control, 1, "one control channel");
    drop(flood);
    let restarts = server.seen.iter().filter(|l| l.contains("restart")).count();
    assert_eq!(restarts, 0, "{:?}", server.seen);
}

on_both_drivers!(a_go_client_burst_of_max_pool_connections_all_get_ids);

/// The caps leave room for the client's own burst: after its handshake a Go client dials
/// `max` (1024) pool connections at once from its one IP, and each gets its id.
fn a_go_client_burst_of_max_pool_connections_all_get_ids(driver: Driver) {
    use nodepass::proto::handshake::encode_request;
    let (tunnel_port, user_port) = (free_port(), free_port());
    let url = format!(
        "server://mykey@127.0.0.1:{tunnel_port}/127.0.0.1:{user_port}?mode=1&max=1024&log=debug"
    );
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    let mut server = NodepassProcess::start(&url, &env);
    server
        .wait_for_line("Pending tunnel handshake", STEP)
        .expect("server up");
    let tunnel = SocketAddr::from(([127, 0, 0, 1], tunnel_port));
    let mut hs = connect(tunnel);
    hs.write_all(&encode_request("none", "mykey", None))
        .expect("request");
    let mut reply = Vec::new();
    hs.read_to_end(&mut reply).expect("reply");
    assert!(reply.starts_with(b"HTTP/1.1 200 OK\r\n"));

    let started = Instant::now();
    let conns: Vec<TcpStream> = (0..1024).map(|_| connect(tunnel)).collect();
    let mut ids = std::collections::HashSet::new();
    // Kept open to the end: the control channel among them must not be closed.
    for c in &conns {
        let mut c = c;
        let mut id = [0u8; 4];
        if let Err(e) = c.read_exact(&mut id) {
            server.take_output();
            let said: Vec<_> = server
                .seen
                .iter()
                .filter(|l| !l.contains("CHECK_POINT"))
                .collect();
            panic!("pool connection {} got no id ({e}): {said:?}", ids.len());
        }
        assert!(ids.insert(id), "duplicate id");
    }
    eprintln!("1024 pool connections with ids in {:?}", started.elapsed());
    assert!(ids.contains(&[0u8; 4]), "one control channel");
    assert!(
        !server.seen.iter().any(|l| l.contains("proved themselves")),
        "no eviction: {:?}",
        server.seen
    );
}
