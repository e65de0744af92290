//! Micro-benchmarks of the wire codecs: signal lines, handshake parsing, PROXY headers.
//! Plain loops timed with `Instant`, printing ns/op (`cargo bench --bench proto`).

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use nodepass::proto::handshake::{encode_reply, encode_request, parse_reply, parse_request};
use nodepass::proto::{decode_line, encode_line, Action, Flow, Signal, TunnelConfig};
use nodepass::proxy_proto::{v1_header, write_v1_header, V1_MAX_LEN};

/// Runs `f` `iters` times after a short warm-up and prints the mean time per call.
fn bench(name: &str, iters: u32, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let start = Instant::now();
    for _ in 0..iters {
        f();
    }
    let per_op = start.elapsed().as_nanos() as f64 / f64::from(iters);
    println!("{name:<32} {per_op:>10.1} ns/op");
}

fn main() {
    let key = "e68be2b4";
    let tcp = Signal {
        action: Action::Tcp,
        remote: Some("192.168.100.200:54321".into()),
        id: Some("cb5baf6b".into()),
        fp: None,
    };
    let line = encode_line(&tcp, key);
    bench("signal encode (tcp)", 1_000_000, || {
        black_box(encode_line(black_box(&tcp), key));
    });
    bench("signal decode (tcp)", 1_000_000, || {
        black_box(decode_line(black_box(&line), key).ok());
    });

    let request = encode_request("tunnel.example.com", key, None);
    bench("handshake request encode", 1_000_000, || {
        black_box(encode_request("tunnel.example.com", black_box(key), None));
    });
    bench("handshake request parse", 1_000_000, || {
        black_box(parse_request(black_box(&request)).ok());
    });
    let cfg = TunnelConfig {
        flow: Flow::Plus,
        max: 1024,
        tls: 1,
        pool_type: 0,
    };
    let reply = encode_reply(&cfg, None, &Default::default());
    bench("handshake reply parse", 1_000_000, || {
        black_box(parse_reply(black_box(&reply)).ok());
    });

    let src: SocketAddr = "203.0.113.77:51234".parse().unwrap();
    let dst: SocketAddr = "[2001:db8::10]:8080".parse().unwrap();
    let v4_dst: SocketAddr = "10.0.0.2:8080".parse().unwrap();
    bench("PROXY v1 header (TCP4, Vec)", 2_000_000, || {
        black_box(v1_header(black_box(src), black_box(v4_dst)));
    });
    let mut buf = [0u8; V1_MAX_LEN];
    bench("PROXY v1 header (TCP4, no alloc)", 2_000_000, || {
        black_box(write_v1_header(black_box(src), black_box(v4_dst), &mut buf));
    });
    bench("PROXY v1 header (TCP6, no alloc)", 2_000_000, || {
        black_box(write_v1_header(black_box(src), black_box(dst), &mut buf));
    });
}
