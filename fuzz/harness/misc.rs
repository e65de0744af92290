//! Targets for the URL/config parser, the CHECK_POINT line and the PROXY headers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use nodepass::config::{parse_url, Config, Env, Scheme, TlsMode};
use nodepass::proxy_proto::{v1_header, v2_header, Transport, V2_SIGNATURE};
use nodepass::stats::CheckPoint;

use super::{take_field, text};

/// Any text parses or fails without panic; an accepted URL renders (`full_url`, the
/// started line) in bounded size, and its `full_url` parses back to the same `Config`
/// (defaults spelled out) whose `full_url` is the same text.
pub fn config_url(data: &[u8]) {
    let Ok(url) = std::str::from_utf8(data) else {
        return;
    };
    let cfg = match parse_url(url, Env::default()) {
        Ok(cfg) => cfg,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let full = cfg.full_url();
    let bound = 4 * url.len() + 4096;
    assert!(full.len() <= bound && cfg.started_line().len() <= bound + full.len());
    // A master prefix with `%00`, `%3F`… reads back too: `full_url` escapes it
    // (regressions/config_url/crash-0624…).
    let mut again = match parse_url(&full, Env::default()) {
        Ok(again) => again,
        Err(e) => panic!("{url:?} -> {full:?} does not parse back: {e}"),
    };
    // `full_url` spells out the defaults: the SNI (the host when unset) and the log level
    // (`raw_log` keeps the text as written).
    // Only a client uses (and renders) the SNI: regressions/config_url/crash-14ec….
    if cfg.scheme == Scheme::Client {
        assert_eq!(again.sni_name(), cfg.sni_name(), "{url:?} -> {full:?}");
    }
    assert_eq!(
        again.full_url(),
        full,
        "{url:?}: full_url is not a fixed point"
    );
    again.params.sni.clone_from(&cfg.params.sni);
    again.raw_log.clone_from(&cfg.raw_log);
    if cfg.scheme == Scheme::Master {
        // The master's line holds only its address, prefix, log and TLS settings.
        let shown = |c: &Config| {
            let p = &c.params;
            let files = (p.tls == TlsMode::Files).then(|| (p.crt.clone(), p.key_file.clone()));
            (
                c.tunnel.clone(),
                c.master_prefix.clone(),
                p.log,
                p.tls,
                files,
            )
        };
        assert_eq!(shown(&again), shown(&cfg), "{url:?} -> {full:?}");
        return;
    }
    assert_eq!(
        without_unrendered(again),
        without_unrendered(cfg),
        "{url:?} -> {full:?}"
    );
}

/// `cfg` without the settings `full_url` leaves out because this scheme never uses them
/// (fuzz/regressions/config_url/crash-8494…: `key=` on a `tls=0` server).
fn without_unrendered(mut cfg: Config) -> Config {
    let p = &mut cfg.params;
    if cfg.scheme != Scheme::Client {
        p.min = 0;
        p.sni.clear();
    }
    if cfg.scheme != Scheme::Server {
        p.max = 0;
        p.pool_type = 0;
    }
    if cfg.scheme == Scheme::Client {
        p.tls = TlsMode::Off;
    }
    if p.tls != TlsMode::Files {
        p.crt.clear();
        p.key_file.clear();
    }
    cfg
}

/// Any text parses or fails without panic; a parsed CHECK_POINT prints and parses back
/// to itself; fuzzed values after a fuzzed prefix (without the tag) are found again.
pub fn checkpoint(data: &[u8]) {
    let line = text(data);
    if let Ok(cp) = line.parse::<CheckPoint>() {
        assert_eq!(cp.to_string().parse::<CheckPoint>(), Ok(cp));
    }
    let mut nums = [0u64; 9];
    for (n, chunk) in nums.iter_mut().zip(data.chunks(8)) {
        *n = chunk.iter().fold(0, |a, &b| a << 8 | u64::from(b));
    }
    let [mode, ping_ms, pool, tcps, udps, a, b, c, d] = nums;
    let cp = CheckPoint {
        mode,
        ping_ms,
        pool,
        tcps,
        udps,
        traffic: [a, b, c, d],
    };
    let (prefix, _) = take_field(data, 64);
    let prefix = text(prefix);
    if !prefix.contains("CHECK_POINT|") {
        assert_eq!(format!("{prefix}{cp}|x").parse::<CheckPoint>(), Ok(cp));
    }
}

/// PROXY v2 from fuzzed addresses: an independent decoder reads back the signature,
/// command, family, transport, length, addresses (IPv4 when both are, else IPv6 with
/// IPv4 mapped) and ports; `ppp` agrees on the length; v1 parses with `ppp` too.
pub fn proxy_v2(data: &[u8]) {
    let mut bytes = [0u8; 38];
    for (d, s) in bytes.iter_mut().zip(data) {
        *d = *s;
    }
    let flags = bytes[0];
    let src = addr(
        flags & 3,
        &bytes[1..17],
        u16::from_be_bytes([bytes[17], bytes[18]]),
    );
    let dst = addr(
        flags >> 2 & 3,
        &bytes[19..35],
        u16::from_be_bytes([bytes[35], bytes[36]]),
    );
    let transport = if flags & 16 == 0 {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let header = v2_header(src, dst, transport);
    let both_v4 = canonical(src).is_ipv4() && canonical(dst).is_ipv4();
    assert_eq!(header.len(), if both_v4 { 28 } else { 52 });
    let (got_src, got_dst, got_transport) = decode_v2(&header);
    assert_eq!(
        (got_src, got_dst, got_transport),
        (canonical(src), canonical(dst), transport)
    );
    let parsed = ppp::v2::Header::try_from(header.as_slice());
    assert_eq!(parsed.map(|h| h.len()).ok(), Some(header.len()));
    let v1 = v1_header(src, dst);
    let v1 = std::str::from_utf8(&v1).unwrap_or_default();
    assert!(ppp::v1::Header::try_from(v1).is_ok(), "{v1:?}");
}

/// 0: IPv4, 1: IPv6, 2: IPv4-mapped IPv6, 3: IPv6 loopback or unspecified.
fn addr(kind: u8, b: &[u8], port: u16) -> SocketAddr {
    let v4 = Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    let mut v6 = [0u8; 16];
    v6.copy_from_slice(&b[..16]);
    let ip = match kind {
        0 => IpAddr::V4(v4),
        1 => IpAddr::V6(Ipv6Addr::from(v6)),
        2 => IpAddr::V6(v4.to_ipv6_mapped()),
        _ if b[0] & 1 == 0 => IpAddr::V6(Ipv6Addr::LOCALHOST),
        _ => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    SocketAddr::new(ip, port)
}

/// What the header must carry: IPv4-mapped IPv6 counts as IPv4 (Go's `To4`).
fn canonical(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), a.port()),
            None => a,
        },
        IpAddr::V4(_) => a,
    }
}

/// A minimal v2 reader (HAProxy proxy-protocol.txt §2.2), written apart from the encoder.
/// IPv6 addresses that hold IPv4-mapped ones are reported as IPv4.
fn decode_v2(h: &[u8]) -> (SocketAddr, SocketAddr, Transport) {
    assert_eq!(&h[..12], &V2_SIGNATURE);
    assert_eq!(h[12], 0x21, "version 2, PROXY command");
    let transport = match h[13] & 0x0f {
        1 => Transport::Tcp,
        2 => Transport::Udp,
        other => panic!("transport nibble {other}"),
    };
    let len = usize::from(u16::from_be_bytes([h[14], h[15]]));
    assert_eq!(h.len(), 16 + len, "length field");
    let body = &h[16..];
    let (src, dst, ports) = match h[13] >> 4 {
        1 => {
            assert_eq!(len, 12);
            let ip = |b: &[u8]| IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]));
            (ip(&body[0..4]), ip(&body[4..8]), &body[8..12])
        }
        2 => {
            assert_eq!(len, 36);
            let ip = |b: &[u8]| {
                let mut o = [0u8; 16];
                o.copy_from_slice(b);
                let v6 = Ipv6Addr::from(o);
                v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
            };
            (ip(&body[0..16]), ip(&body[16..32]), &body[32..36])
        }
        other => panic!("family nibble {other}"),
    };
    let port = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    (
        SocketAddr::new(src, port(&ports[0..2])),
        SocketAddr::new(dst, port(&ports[2..4])),
        transport,
    )
}
