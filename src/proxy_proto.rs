//! PROXY protocol headers (v1 text as NodePass sends it; v2 binary as our extension).

use std::net::{IpAddr, SocketAddr};

/// Transport named in a PROXY v2 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// TCP (STREAM).
    Tcp,
    /// UDP (DGRAM).
    Udp,
}

/// `PROXY TCP4|TCP6 <src ip> <dst ip> <src port> <dst port>\r\n`.
pub fn v1_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let fam = if src.is_ipv4() && dst.is_ipv4() {
        "TCP4"
    } else {
        "TCP6"
    };
    format!(
        "PROXY {fam} {} {} {} {}\r\n",
        src.ip(),
        dst.ip(),
        src.port(),
        dst.port()
    )
    .into_bytes()
}

/// A PROXY v2 header (PROXY command) for `src` → `dst`.
pub fn v2_header(src: SocketAddr, dst: SocketAddr, transport: Transport) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x21);
    let proto = match transport {
        Transport::Tcp => 0x01,
        Transport::Udp => 0x02,
    };
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            h.push(0x10 | proto);
            h.extend_from_slice(&12u16.to_be_bytes());
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
        }
        (s, d) => {
            let v6 = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            h.push(0x20 | proto);
            h.extend_from_slice(&36u16.to_be_bytes());
            h.extend_from_slice(&v6(s).octets());
            h.extend_from_slice(&v6(d).octets());
        }
    }
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h
}
