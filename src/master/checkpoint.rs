//! Parsing of the CHECK_POINT statistics line children print at EVENT level.
//!
//! `CHECK_POINT|MODE=<m>|PING=<ms>ms|POOL=<n>|TCPS=<n>|UDPS=<n>|TCPRX=<u64>|TCPTX=<u64>|UDPRX=<u64>|UDPTX=<u64>`
//! may sit anywhere in the line (after the timestamp and the coloured level word), as Go's
//! unanchored regular expression allows.

/// One parsed CHECK_POINT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckPoint {
    /// `MODE=`.
    pub mode: i32,
    /// `PING=` in milliseconds.
    pub ping: i32,
    /// `POOL=`: idle pool connections.
    pub pool: i32,
    /// `TCPS=`: active TCP sessions.
    pub tcps: i32,
    /// `UDPS=`: active UDP sessions.
    pub udps: i32,
    /// `TCPRX, TCPTX, UDPRX, UDPTX`, cumulative since the child started.
    pub traffic: [u64; 4],
}

const FIELDS: [&str; 9] = [
    "MODE=", "PING=", "POOL=", "TCPS=", "UDPS=", "TCPRX=", "TCPTX=", "UDPRX=", "UDPTX=",
];

/// Parse the CHECK_POINT in `line`, if there is a complete one.
pub fn parse(line: &str) -> Option<CheckPoint> {
    let start = line.find("CHECK_POINT|")?;
    let mut rest = &line[start + "CHECK_POINT|".len()..];
    let mut nums = [0u64; 9];
    for (i, name) in FIELDS.iter().enumerate() {
        rest = rest.strip_prefix(name)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        nums[i] = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        if i == 1 {
            rest = rest.strip_prefix("ms")?;
        }
        if i < 8 {
            rest = rest.strip_prefix('|')?;
        }
    }
    let small = |v: u64| i32::try_from(v).unwrap_or(i32::MAX);
    Some(CheckPoint {
        mode: small(nums[0]),
        ping: small(nums[1]),
        pool: small(nums[2]),
        tcps: small(nums[3]),
        udps: small(nums[4]),
        traffic: [nums[5], nums[6], nums[7], nums[8]],
    })
}

/// True when a child line reports a fatal tunnel error (Go sets the status to `error`).
pub fn is_error_line(line: &str) -> bool {
    line.contains("Server error:") || line.contains("Client error:")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_coloured_nodepass_line_parses_into_every_field() {
        let line = "2026-01-02 16:37:20.123  \x1b[36mEVENT\x1b[0m  CHECK_POINT|MODE=2|PING=12ms|POOL=64|TCPS=3|UDPS=1|TCPRX=100|TCPTX=200|UDPRX=300|UDPTX=18446744073709551615";
        let cp = parse(line).unwrap();
        assert_eq!(
            (cp.mode, cp.ping, cp.pool, cp.tcps, cp.udps),
            (2, 12, 64, 3, 1)
        );
        assert_eq!(cp.traffic, [100, 200, 300, u64::MAX]);
    }

    #[test]
    fn truncated_or_malformed_checkpoints_are_not_parsed() {
        assert!(parse("CHECK_POINT|MODE=1|PING=1ms|POOL=0").is_none());
        assert!(parse(
            "CHECK_POINT|MODE=1|PING=1|POOL=0|TCPS=0|UDPS=0|TCPRX=0|TCPTX=0|UDPRX=0|UDPTX=0"
        )
        .is_none());
        assert!(parse(
            "CHECK_POINT|MODE=x|PING=1ms|POOL=0|TCPS=0|UDPS=0|TCPRX=0|TCPTX=0|UDPRX=0|UDPTX=0"
        )
        .is_none());
        assert!(parse("Client started").is_none());
    }

    #[test]
    fn error_lines_are_recognised_for_both_roles() {
        assert!(is_error_line("2026-01-02 ERROR  Client error: dial failed"));
        assert!(is_error_line("Server error: bind"));
        assert!(!is_error_line("Server started: server://..."));
    }
}
