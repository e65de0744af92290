//! PROXY protocol headers sent to the target before relayed bytes: v1 text (what NodePass
//! sends with `proxy=1`) and v2 binary (our extension, HAProxy's proxy-protocol.txt §2.2).
//!
//! NodePass's destination fields are the *target's* address, not the listener's (§3.A.4).

use std::io::Write;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// Longest possible v1 header, `\r\n` included (the spec's 107 plus one spare byte).
pub const V1_MAX_LEN: usize = 108;

/// The 12-byte v2 signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Transport protocol announced in a v2 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// `STREAM` (TCP).
    Tcp,
    /// `DGRAM` (UDP).
    Udp,
}

/// Go's `To4()`: IPv4-mapped IPv6 addresses count as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// An address in IPv6 form (IPv4 becomes `::ffff:a.b.c.d`).
fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// The v1 header: `PROXY TCP4 <src ip> <dst ip> <src port> <dst port>\r\n`.
///
/// `TCP4` when both addresses are IPv4 (IPv4-mapped IPv6 counts, as in Go). Otherwise
/// `TCP6`, and an IPv4 address is written as `::ffff:a.b.c.d`; Go would print it dotted,
/// which HAProxy's parser rejects under `TCP6`.
pub fn v1_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut buf = [0u8; V1_MAX_LEN];
    let n = write_v1_header(src, dst, &mut buf);
    buf[..n].to_vec()
}

/// Allocation-free [`v1_header`]: writes into `out` and returns the length used.
pub fn write_v1_header(src: SocketAddr, dst: SocketAddr, out: &mut [u8; V1_MAX_LEN]) -> usize {
    let (s, d) = (canonical(src.ip()), canonical(dst.ip()));
    let mut cursor = &mut out[..];
    let room = cursor.len();
    // The longest header (two full IPv6 texts, two 5-digit ports) is 104 bytes, so
    // these writes into the 108-byte array cannot run out of space.
    let _ = match (s, d) {
        (IpAddr::V4(s4), IpAddr::V4(d4)) => write!(
            cursor,
            "PROXY TCP4 {s4} {d4} {} {}\r\n",
            src.port(),
            dst.port()
        ),
        _ => write!(
            cursor,
            "PROXY TCP6 {} {} {} {}\r\n",
            as_v6(s),
            as_v6(d),
            src.port(),
            dst.port()
        ),
    };
    room - cursor.len()
}

/// The v2 header: signature, version 2 + `PROXY` command, family and transport, length,
/// then addresses and ports in network order. Mixed families are sent as IPv6.
pub fn v2_header(src: SocketAddr, dst: SocketAddr, transport: Transport) -> Vec<u8> {
    let (s, d) = (canonical(src.ip()), canonical(dst.ip()));
    let mut out = Vec::with_capacity(16 + 36);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(0x21);
    let proto_nibble = match transport {
        Transport::Tcp => 0x1,
        Transport::Udp => 0x2,
    };
    match (s, d) {
        (IpAddr::V4(s4), IpAddr::V4(d4)) => {
            out.push(0x10 | proto_nibble);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&s4.octets());
            out.extend_from_slice(&d4.octets());
        }
        _ => {
            out.push(0x20 | proto_nibble);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&as_v6(s).octets());
            out.extend_from_slice(&as_v6(d).octets());
        }
    }
    out.extend_from_slice(&src.port().to_be_bytes());
    out.extend_from_slice(&dst.port().to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v1(src: &str, dst: &str) -> String {
        String::from_utf8(v1_header(addr(src), addr(dst))).unwrap()
    }

    #[test]
    fn v1_ipv4_matches_nodepass_golden_line() {
        assert_eq!(
            v1("192.168.1.10:51234", "10.0.0.2:8080"),
            "PROXY TCP4 192.168.1.10 10.0.0.2 51234 8080\r\n"
        );
    }

    #[test]
    fn v1_ipv6_and_mapped_addresses() {
        assert_eq!(
            v1("[2001:db8::1]:443", "[::1]:80"),
            "PROXY TCP6 2001:db8::1 ::1 443 80\r\n"
        );
        assert_eq!(
            v1("[::ffff:1.2.3.4]:1", "5.6.7.8:2"),
            "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"
        );
        assert_eq!(
            v1("1.2.3.4:1", "[2001:db8::2]:2"),
            "PROXY TCP6 ::ffff:1.2.3.4 2001:db8::2 1 2\r\n"
        );
    }

    #[test]
    fn v1_longest_header_fits_and_parses_with_ppp() {
        let long = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe]:65535";
        let header = v1(long, long);
        assert_eq!(header.len(), 104);
        let parsed = ppp::v1::Header::try_from(header.as_str()).unwrap();
        assert_eq!(parsed.header, header);
        let mixed = v1("1.2.3.4:1", "[2001:db8::2]:2");
        assert!(ppp::v1::Header::try_from(mixed.as_str()).is_ok());
    }

    #[test]
    fn v2_ipv4_tcp_parses_back_with_ppp() {
        let bytes = v2_header(
            addr("192.168.1.10:51234"),
            addr("10.0.0.2:8080"),
            Transport::Tcp,
        );
        assert_eq!(bytes.len(), 28);
        assert_eq!(&bytes[12..16], &[0x21, 0x11, 0, 12]);
        let h = v2::Header::try_from(bytes.as_slice()).unwrap();
        assert_eq!(h.command, v2::Command::Proxy);
        assert_eq!(h.protocol, v2::Protocol::Stream);
        assert_eq!(
            h.addresses,
            v2::Addresses::IPv4(ppp::v2::IPv4::new(
                [192, 168, 1, 10],
                [10, 0, 0, 2],
                51234,
                8080
            ))
        );
    }

    #[test]
    fn v2_ipv6_udp_and_mixed_families_parse_back_with_ppp() {
        let bytes = v2_header(
            addr("[2001:db8::1]:53"),
            addr("1.2.3.4:5353"),
            Transport::Udp,
        );
        assert_eq!(&bytes[12..16], &[0x21, 0x22, 0, 36]);
        let h = v2::Header::try_from(bytes.as_slice()).unwrap();
        assert_eq!(h.protocol, v2::Protocol::Datagram);
        let v2::Addresses::IPv6(a) = h.addresses else {
            panic!("not IPv6: {:?}", h.addresses);
        };
        assert_eq!(a.source_address, "2001:db8::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            a.destination_address,
            "::ffff:1.2.3.4".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!((a.source_port, a.destination_port), (53, 5353));
        assert_eq!(h.len(), bytes.len());
    }

    #[test]
    fn v2_ipv4_udp_uses_family_0x12() {
        let bytes = v2_header(addr("1.1.1.1:1"), addr("2.2.2.2:2"), Transport::Udp);
        assert_eq!(bytes[13], 0x12);
        assert_eq!(&bytes[..12], &V2_SIGNATURE);
    }
}
