//! Relay micro-benchmark: one-way bulk throughput and new-connection rate on loopback,
//! direct vs through the forwarder with each relay method (splice, io_uring splice, copy)
//! on each driver. Run: `cargo bench --bench relay` (add `-- --quick` for a short run).
//!
//! This measures the relay in isolation (sender, relay and sink in one process, 2 workers);
//! end-to-end numbers against peers come from `perf/run.sh`.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nodepass::config::Driver;
use nodepass::dataplane::{self, DataPlane, RelayKind, SessionSpec, WorkerSockets};

/// A sink that reads and discards everything, then replies with one byte and closes.
fn sink() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // Samples run one connection at a time, so one thread serves them in turn.
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            while let Ok(n) = c.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            let _ = c.write_all(b"k");
        }
    });
    addr
}

fn start(
    kind: RelayKind,
    driver: Driver,
    target: SocketAddr,
) -> (SocketAddr, DataPlane<std::convert::Infallible>) {
    let active = nodepass::runtime::choose(driver).unwrap();
    let tcp = nodepass::net::bind_tcp_listeners("127.0.0.1:0".parse().unwrap(), 2).unwrap();
    let addr = tcp[0].local_addr().unwrap();
    let sockets = tcp
        .into_iter()
        .map(|t| WorkerSockets {
            tcp: Some(t),
            udp: None,
        })
        .collect();
    let mut spec = SessionSpec::with_targets(vec![Some(target)]);
    spec.relay = kind;
    (
        addr,
        dataplane::start_forwarder(Arc::new(spec), sockets, active).unwrap(),
    )
}

fn bulk_gbps(addr: SocketAddr, bytes: usize) -> f64 {
    let chunk = vec![7u8; 256 * 1024];
    let mut s = TcpStream::connect(addr).unwrap();
    let t = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        s.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut k = [0u8; 1];
    s.read_exact(&mut k).unwrap();
    (sent as f64 * 8.0) / t.elapsed().as_secs_f64() / 1e9
}

fn conns_per_sec(addr: SocketAddr, window: Duration) -> f64 {
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed() < window {
        let mut s = TcpStream::connect(addr).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut k = [0u8; 1];
        s.read_exact(&mut k).unwrap();
        n += 1;
    }
    f64::from(n) / t.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (bytes, window, reps) = if quick {
        (256 << 20, Duration::from_millis(500), 1)
    } else {
        (2 << 30, Duration::from_secs(2), 3)
    };
    let target = sink();
    let mut rows = vec![("direct".to_string(), target, None)];
    for driver in [Driver::Uring, Driver::Legacy] {
        for kind in [RelayKind::Splice, RelayKind::UringSplice, RelayKind::Copy] {
            if kind == RelayKind::UringSplice && driver == Driver::Legacy {
                continue;
            }
            let (addr, plane) = start(kind, driver, target);
            rows.push((format!("{kind:?}/{driver:?}"), addr, Some(plane)));
        }
    }
    println!(
        "relay bench: {} MiB per bulk sample, {reps} rep(s), medians",
        bytes >> 20
    );
    println!(
        "{:<22} {:>10} {:>8} {:>12} {:>8}",
        "contender", "Gb/s", "x direct", "conn/s", "x direct"
    );
    let mut direct = (0.0, 0.0);
    for (name, addr, _) in &rows {
        let g = median((0..reps).map(|_| bulk_gbps(*addr, bytes)).collect());
        let c = median((0..reps).map(|_| conns_per_sec(*addr, window)).collect());
        if name == "direct" {
            direct = (g, c);
        }
        println!(
            "{name:<22} {g:>10.2} {:>8.2} {c:>12.0} {:>8.2}",
            g / direct.0,
            c / direct.1
        );
    }
    for (_, _, plane) in rows {
        if let Some(p) = plane {
            nodepass::bus::post_all(&p.handles, || nodepass::bus::Command::CloseAll);
            p.join();
        }
    }
}
