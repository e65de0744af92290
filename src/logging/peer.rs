//! Peer-controlled text in log lines: [`peer`] escapes what could forge a line (a newline
//! followed by a fake `CHECK_POINT|…`, ANSI escapes, bidi overrides) and bounds its length.

use std::fmt::{self, Write as _};

/// At most this many characters of one peer-supplied value are printed, then `…`.
pub const PEER_TEXT_MAX: usize = 256;

/// Text a peer controls, printable in a log line: see [`peer`].
#[derive(Clone, Copy, Debug)]
pub struct PeerText<'a>(&'a str);

/// Wrap text a peer controls (a signal's `remote`, `fp` or action word, a parse error that
/// quotes input) for a log line. Its `Display` writes `\` as `\\`, `|` (the EVENT field
/// separator, so no `CHECK_POINT|` can appear) as `\|`, `\n` `\r` `\t` as themselves
/// escaped, every other control or invisible formatting character as `\u{…}`, and at most
/// [`PEER_TEXT_MAX`] characters followed by `…`.
pub fn peer(text: &str) -> PeerText<'_> {
    PeerText(text)
}

impl fmt::Display for PeerText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, c) in self.0.chars().enumerate() {
            if i == PEER_TEXT_MAX {
                return f.write_char('…');
            }
            match c {
                '\\' => f.write_str("\\\\")?,
                '|' => f.write_str("\\|")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                c if invisible(c) => write!(f, "\\u{{{:x}}}", u32::from(c))?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Control characters and the formatting ones that change how a line reads on a
/// terminal or in a dashboard (line/paragraph separators, zero-width, bidi controls, BOM).
fn invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::CheckPoint;

    #[test]
    fn a_forged_checkpoint_becomes_one_harmless_line() {
        let forged = "1.2.3.4:5\n2026-01-01 00:00:00.000  EVENT  CHECK_POINT|MODE=1|PING=1ms|POOL=0|TCPS=777|UDPS=0|TCPRX=123456789012|TCPTX=0|UDPRX=0|UDPTX=0";
        let shown = peer(forged).to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.parse::<CheckPoint>().is_err(), "{shown}");
        assert!(
            shown
                .starts_with("1.2.3.4:5\\n2026-01-01 00:00:00.000  EVENT  CHECK_POINT\\|MODE=1\\|"),
            "{shown}"
        );
    }

    #[test]
    fn control_backslash_and_invisible_characters_are_escaped() {
        let table = [
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("[::1]:80", "[::1]:80"),
            ("a\\nb", "a\\\\nb"),
            ("a\r\tb", "a\\r\\tb"),
            ("\x1b[31mred", "\\u{1b}[31mred"),
            ("\0\x7f", "\\u{0}\\u{7f}"),
            (
                "x\u{202e}y\u{2028}z\u{feff}",
                "x\\u{202e}y\\u{2028}z\\u{feff}",
            ),
            ("héllo 世界", "héllo 世界"),
        ];
        for (raw, shown) in table {
            assert_eq!(peer(raw).to_string(), shown, "{raw:?}");
        }
    }

    #[test]
    fn long_text_is_cut_after_the_limit() {
        let long = "é".repeat(PEER_TEXT_MAX + 10);
        let shown = peer(&long).to_string();
        assert_eq!(shown.chars().count(), PEER_TEXT_MAX + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(
            peer(&long[..PEER_TEXT_MAX * 2]).to_string(),
            "é".repeat(PEER_TEXT_MAX)
        );
    }
}
