//! Reading a child's output lines: a CHECK_POINT is a [`crate::stats::CheckPoint`]
//! (parsed with `str::parse`, the same type the child printed it with); this file knows
//! the other line that matters, a fatal tunnel error, and gives a line its level colour
//! back for the `log` event.
//!
//! Children write to a pipe, so they print plain lines (no ANSI); Go's children always
//! colour, and NodePassDash renders those colours. The `log` event therefore carries the
//! line as Go's child would have printed it. Both forms parse the same everywhere.

use std::borrow::Cow;

use crate::logging::Severity;

/// True when a child line reports a fatal tunnel error (Go sets the status to `error`).
pub fn is_error_line(line: &str) -> bool {
    line.contains("Server error:") || line.contains("Client error:")
}

/// `line` with its level word in ANSI colour, as Go NodePass prints it: a plain NodePass
/// line (`YYYY-MM-DD HH:MM:SS.mmm  LEVEL  message`) gets the colour, anything else
/// (already coloured, or not a log line) is returned as it is.
pub fn with_level_colour(line: &str) -> Cow<'_, str> {
    const STAMP: usize = "2026-01-02 03:04:05.067".len();
    let b = line.as_bytes();
    let stamp_shaped = b.len() > STAMP + 2
        && b[4] == b'-'
        && b[10] == b' '
        && b[13] == b':'
        && b[19] == b'.'
        && &b[STAMP..STAMP + 2] == b"  ";
    if !stamp_shaped {
        return Cow::Borrowed(line);
    }
    let (stamp, rest) = line.split_at(STAMP + 2);
    let levels = [
        Severity::Debug,
        Severity::Info,
        Severity::Warn,
        Severity::Error,
        Severity::Event,
    ];
    for severity in levels {
        let word = severity.word();
        if let Some(after) = rest.strip_prefix(word) {
            if after.starts_with("  ") {
                let colour = severity.colour();
                return Cow::Owned(format!("{stamp}{colour}{word}\x1b[0m{after}"));
            }
        }
    }
    Cow::Borrowed(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::CheckPoint;

    #[test]
    fn error_lines_are_recognised_for_both_roles() {
        assert!(is_error_line("2026-01-02 ERROR  Client error: dial failed"));
        assert!(is_error_line("Server error: bind"));
        assert!(!is_error_line("Server started: server://..."));
    }

    #[test]
    fn error_lines_are_recognised_with_and_without_colour() {
        let plain = "2026-01-02 03:04:05.067  ERROR  Client error: control lost";
        let coloured = "2026-01-02 03:04:05.067  \x1b[31mERROR\x1b[0m  Client error: control lost";
        assert!(is_error_line(plain) && is_error_line(coloured));
    }

    #[test]
    fn checkpoints_parse_with_and_without_colour() {
        let body =
            "CHECK_POINT|MODE=1|PING=0ms|POOL=0|TCPS=1|UDPS=0|TCPRX=10|TCPTX=20|UDPRX=0|UDPTX=0";
        let plain = format!("2026-01-02 03:04:05.067  EVENT  {body}");
        let coloured = format!("2026-01-02 03:04:05.067  \x1b[36mEVENT\x1b[0m  {body}");
        let a: CheckPoint = plain.parse().expect("plain");
        let b: CheckPoint = coloured.parse().expect("coloured");
        assert_eq!(a, b);
        assert_eq!(a.traffic[0], 10);
    }

    #[test]
    fn plain_lines_get_gos_level_colour_back_and_others_stay() {
        let plain = "2026-01-02 03:04:05.067  INFO  Client started: client://k@a:1/b:2";
        assert_eq!(
            with_level_colour(plain),
            "2026-01-02 03:04:05.067  \x1b[32mINFO\x1b[0m  Client started: client://k@a:1/b:2"
        );
        let coloured = with_level_colour(plain).into_owned();
        assert_eq!(with_level_colour(&coloured), coloured, "coloured once only");
        for other in [
            "Error: bad URL",
            "",
            "2026-01-02 03:04:05.067  INFORMATION x",
        ] {
            assert_eq!(with_level_colour(other), other);
        }
    }
}
