//! Faults under attack, with the real binaries (auth1 between our peers): a tunnel whose
//! client is killed and started again heals each time while the tunnel port is flooded
//! with garbage, slowloris and bad-proof connections; and 500 pool connections refused for
//! a wrong proof of the key leave the server with the descriptors and memory it had.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::common::*;
use nodepass::config::Driver;

/// A pool connection that sends the magic and, once given an id, a proof of nothing;
/// reads until the server closes it. Returns what it read after its id (a refused
/// connection reads nothing).
fn bad_proof(tunnel: SocketAddr) -> Option<usize> {
    let mut s = TcpStream::connect(tunnel).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    s.write_all(b"NPA1").ok()?;
    let mut id = [0u8; 4];
    s.read_exact(&mut id).ok()?;
    s.write_all(&[0xa5; 32]).ok()?;
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    Some(rest.len())
}

/// Three kinds of attacker on the tunnel port, each on its own thread until dropped:
/// garbage bytes, a slowloris handshake (a byte of a request head now and then) and pool
/// connections with a wrong proof.
struct Attack {
    stop: Arc<AtomicBool>,
    made: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<()>>,
}

impl Attack {
    fn start(tunnel: SocketAddr) -> Attack {
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for kind in 0..3 {
            let (stop, made) = (Arc::clone(&stop), Arc::clone(&made));
            threads.push(std::thread::spawn(move || {
                let mut slow: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match kind {
                        0 => {
                            if let Ok(mut c) = TcpStream::connect(tunnel) {
                                let _ = c.write_all(b"\x16\x03\x01\x00garbage\r\n\r\n");
                            }
                        }
                        1 => {
                            if let Ok(c) = TcpStream::connect(tunnel) {
                                slow.push(c);
                            }
                            for c in &mut slow {
                                let _ = c.write_all(b"G");
                            }
                            if slow.len() > 64 {
                                slow.remove(0);
                            }
                        }
                        _ => {
                            let _ = bad_proof(tunnel);
                        }
                    }
                    made.fetch_add(1, Ordering::Relaxed);
                    // Leave the CPU to the processes under test (2 cores).
                    std::thread::park_timeout(Duration::from_millis(15));
                }
            }));
        }
        Attack {
            stop,
            made,
            threads,
        }
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

on_both_drivers!(a_restarted_client_heals_the_tunnel_while_the_port_is_under_attack);

fn a_restarted_client_heals_the_tunnel_while_the_port_is_under_attack(driver: Driver) {
    let target = echo_tcp();
    let o = TunnelOpts {
        reverse: false,
        server_query: "",
        client_query: "",
        env: vec![("NP_DRIVER", np_driver(driver))],
    };
    let mut pair = tunnel_pair(&o, target);
    let tunnel = SocketAddr::from(([127, 0, 0, 1], pair.tunnel_port));
    let attack = Attack::start(tunnel);
    let mut env = TUNNEL_ENV.to_vec();
    env.push(("NP_DRIVER", np_driver(driver)));
    for round in 0..3u8 {
        drop(pair.client);
        let started = Instant::now();
        pair.client = NodepassProcess::start(&pair.client_url, &env);
        pair.client
            .wait_for_line("Marking tunnel handshake as complete", STEP)
            .unwrap_or_else(|| panic!("round {round}: no tunnel: {:?}", pair.client.seen));
        // The first echo may still meet the previous run's last moments: retry it.
        let first = payload(1000, round);
        assert!(
            eventually(STEP, || echo_through_ok(pair.user, &first)),
            "round {round}: no echo"
        );
        eprintln!(
            "round {round}: first echo {:?} after the client's start, {} attacker connections so far",
            started.elapsed(),
            attack.made.load(Ordering::Relaxed)
        );
        for i in 0..5u8 {
            let data = payload(30_000 + usize::from(i) * 7777, i ^ round);
            assert_eq!(
                echo_through(pair.user, &data),
                data,
                "round {round}, user {i}"
            );
        }
    }
    assert!(attack.made.load(Ordering::Relaxed) > 30, "the attack ran");
    drop(attack);
    pair.server
        .wait_for_line("wrong proof of the key", STEP)
        .unwrap_or_else(|| panic!("bad proofs are refused, in words: {:?}", pair.server.seen));
}

on_both_drivers!(five_hundred_refused_pool_proofs_leave_no_descriptors_and_little_memory);

fn five_hundred_refused_pool_proofs_leave_no_descriptors_and_little_memory(driver: Driver) {
    let target = echo_tcp();
    let o = TunnelOpts {
        reverse: false,
        server_query: "",
        client_query: "",
        env: vec![("NP_DRIVER", np_driver(driver))],
    };
    let pair = tunnel_pair(&o, target);
    let tunnel = SocketAddr::from(([127, 0, 0, 1], pair.tunnel_port));
    let pid = pair.server.pid();
    let data = payload(64 * 1024, 1);
    assert_eq!(echo_through(pair.user, &data), data);
    // Let the client's pool settle (min=8) before taking the baseline.
    let mut last = open_fds(pid);
    let settled = eventually(STEP, || {
        std::thread::park_timeout(Duration::from_millis(300));
        let now = open_fds(pid);
        std::mem::replace(&mut last, now) == now
    });
    assert!(settled, "descriptors never settled");
    let (fds_before, rss_before) = (open_fds(pid), rss_kib(pid));
    let mut refused = 0;
    for _batch in 0..10 {
        let batch: Vec<JoinHandle<Option<usize>>> = (0..50)
            .map(|_| std::thread::spawn(move || bad_proof(tunnel)))
            .collect();
        for b in batch {
            let got = b.join().unwrap();
            assert!(got.unwrap_or(0) == 0, "a refused connection read bytes");
            refused += usize::from(got.is_some());
        }
    }
    assert!(
        refused >= 450,
        "only {refused} of 500 got as far as their proof"
    );
    // The tunnel still carries bytes.
    assert_eq!(echo_through(pair.user, &data), data);
    let slack = 8;
    let back = eventually(STEP, || open_fds(pid) <= fds_before + slack);
    let (fds_after, rss_after) = (open_fds(pid), rss_kib(pid));
    eprintln!(
        "server after {refused} refused proofs: fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB"
    );
    assert!(back, "descriptors {fds_before} -> {fds_after}");
    assert!(
        rss_after < rss_before + 4 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
}
