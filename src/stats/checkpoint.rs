//! The CHECK_POINT statistics line: one type for the writer (every instance, at EVENT
//! level) and the reader (the master, from its children's output).
//!
//! `CHECK_POINT|MODE=<m>|PING=<ms>ms|POOL=<n>|TCPS=<n>|UDPS=<n>|TCPRX=<u64>|TCPTX=<u64>|UDPRX=<u64>|UDPTX=<u64>`
//! (PROTOCOL.md §6). [`Display`](std::fmt::Display) writes exactly that body;
//! [`FromStr`] finds it anywhere in a line (after the timestamp and the coloured level
//! word), as Go's unanchored regular expression does.

use std::fmt;
use std::str::FromStr;

/// One CHECK_POINT: the tunnel's mode and gauges, and the counters since it started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CheckPoint {
    /// `MODE=`: the run mode (1 or 2; 0 before it is known).
    pub mode: u64,
    /// `PING=`: the last control-channel round trip in milliseconds.
    pub ping_ms: u64,
    /// `POOL=`: idle pool connections.
    pub pool: u64,
    /// `TCPS=`: live TCP sessions.
    pub tcps: u64,
    /// `UDPS=`: live UDP sessions.
    pub udps: u64,
    /// `TCPRX, TCPTX, UDPRX, UDPTX`: bytes since the process started.
    pub traffic: [u64; 4],
}

const TAG: &str = "CHECK_POINT|";

const FIELDS: [&str; 9] = [
    "MODE=", "PING=", "POOL=", "TCPS=", "UDPS=", "TCPRX=", "TCPTX=", "UDPRX=", "UDPTX=",
];

impl fmt::Display for CheckPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [tcp_rx, tcp_tx, udp_rx, udp_tx] = self.traffic;
        write!(
            f,
            "{TAG}MODE={}|PING={}ms|POOL={}|TCPS={}|UDPS={}|TCPRX={tcp_rx}|TCPTX={tcp_tx}|UDPRX={udp_rx}|UDPTX={udp_tx}",
            self.mode, self.ping_ms, self.pool, self.tcps, self.udps
        )
    }
}

/// The line holds no complete CHECK_POINT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotACheckPoint;

impl fmt::Display for NotACheckPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no complete CHECK_POINT in the line")
    }
}

impl std::error::Error for NotACheckPoint {}

impl FromStr for CheckPoint {
    type Err = NotACheckPoint;

    /// The first CHECK_POINT in `line`; text before it and after `UDPTX=<n>` is ignored.
    fn from_str(line: &str) -> Result<Self, NotACheckPoint> {
        let start = line.find(TAG).ok_or(NotACheckPoint)?;
        let mut rest = &line[start + TAG.len()..];
        let mut nums = [0u64; 9];
        for (i, name) in FIELDS.iter().enumerate() {
            rest = rest.strip_prefix(name).ok_or(NotACheckPoint)?;
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 {
                return Err(NotACheckPoint);
            }
            nums[i] = rest[..digits].parse().map_err(|_| NotACheckPoint)?;
            rest = &rest[digits..];
            if i == 1 {
                rest = rest.strip_prefix("ms").ok_or(NotACheckPoint)?;
            }
            if i < 8 {
                rest = rest.strip_prefix('|').ok_or(NotACheckPoint)?;
            }
        }
        let [mode, ping_ms, pool, tcps, udps, tcp_rx, tcp_tx, udp_rx, udp_tx] = nums;
        Ok(CheckPoint {
            mode,
            ping_ms,
            pool,
            tcps,
            udps,
            traffic: [tcp_rx, tcp_tx, udp_rx, udp_tx],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_then_parse_gives_the_same_checkpoint() {
        let cp = CheckPoint {
            mode: 2,
            ping_ms: 17,
            pool: 64,
            tcps: 3,
            udps: 1,
            traffic: [1, 22, 333, u64::MAX],
        };
        assert_eq!(cp.to_string().parse::<CheckPoint>(), Ok(cp));
        let zero = CheckPoint::default();
        assert_eq!(zero.to_string().parse::<CheckPoint>(), Ok(zero));
    }

    #[test]
    fn a_coloured_nodepass_line_parses_into_every_field() {
        let line = "2026-01-02 16:37:20.123  \x1b[36mEVENT\x1b[0m  CHECK_POINT|MODE=2|PING=12ms|POOL=64|TCPS=3|UDPS=1|TCPRX=100|TCPTX=200|UDPRX=300|UDPTX=18446744073709551615";
        let cp: CheckPoint = line.parse().unwrap();
        assert_eq!(
            (cp.mode, cp.ping_ms, cp.pool, cp.tcps, cp.udps),
            (2, 12, 64, 3, 1)
        );
        assert_eq!(cp.traffic, [100, 200, 300, u64::MAX]);
    }

    #[test]
    fn truncated_or_malformed_checkpoints_are_not_parsed() {
        let bad = [
            "CHECK_POINT|MODE=1|PING=1ms|POOL=0",
            "CHECK_POINT|MODE=1|PING=1|POOL=0|TCPS=0|UDPS=0|TCPRX=0|TCPTX=0|UDPRX=0|UDPTX=0",
            "CHECK_POINT|MODE=x|PING=1ms|POOL=0|TCPS=0|UDPS=0|TCPRX=0|TCPTX=0|UDPRX=0|UDPTX=0",
            "CHECK_POINT|MODE=1|PING=1ms|POOL=0|TCPS=0|UDPS=0|TCPRX=0|TCPTX=0|UDPRX=0|UDPTX=18446744073709551616",
            "Client started",
        ];
        for line in bad {
            assert_eq!(line.parse::<CheckPoint>(), Err(NotACheckPoint), "{line}");
        }
    }
}
