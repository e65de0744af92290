//! `block=`: recognise SOCKS, HTTP and TLS from the first bytes a user sends.
//!
//! Go blocks until 8 bytes arrive, which hangs protocols where the server speaks first.
//! The classifier here says `NeedMore` while a prefix is still ambiguous, so the caller
//! can wait a bounded time for more bytes and let the connection through when none come.

use crate::config::BlockSet;

/// What the first bytes of a connection say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Let the connection through.
    Allow,
    /// A blocked protocol; the string names it for the log.
    Block(&'static str),
    /// The bytes so far are a prefix of a blocked protocol: wait for more (bounded).
    NeedMore,
}

/// Longest HTTP method NodePass recognises (`OPTIONS`, `CONNECT`) plus the space.
const HTTP_PREFIX_MAX: usize = 8;

/// Classify `first` (what has arrived so far) against the blocked protocols.
pub fn classify_first_bytes(first: &[u8], blocked: BlockSet) -> Verdict {
    if first.is_empty() {
        return if blocked.is_empty() {
            Verdict::Allow
        } else {
            Verdict::NeedMore
        };
    }
    if blocked.tls && first[0] == 0x16 {
        return Verdict::Block("TLS");
    }
    if blocked.socks {
        match first {
            [0x04] | [0x05] => return Verdict::NeedMore,
            [0x04, 0x01 | 0x02, ..] => return Verdict::Block("SOCKS4"),
            [0x05, 0x01..=0x03, ..] => return Verdict::Block("SOCKS5"),
            _ => {}
        }
    }
    if blocked.http {
        let letters = first
            .iter()
            .take(HTTP_PREFIX_MAX)
            .take_while(|b| b.is_ascii_uppercase())
            .count();
        if letters > 0 && letters < HTTP_PREFIX_MAX {
            match first.get(letters) {
                Some(b' ') => return Verdict::Block("HTTP"),
                None => return Verdict::NeedMore,
                Some(_) => {}
            }
        }
    }
    Verdict::Allow
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: BlockSet = BlockSet {
        socks: true,
        http: true,
        tls: true,
    };

    #[test]
    fn each_blocked_protocol_is_recognised() {
        let cases: &[(&[u8], Verdict)] = &[
            (b"\x16\x03\x01\x02\x00", Verdict::Block("TLS")),
            (b"\x04\x01\x00\x50", Verdict::Block("SOCKS4")),
            (b"\x05\x01\x00", Verdict::Block("SOCKS5")),
            (b"GET / HTTP/1.1\r\n", Verdict::Block("HTTP")),
            (b"CONNECT x:443 HTTP/1.1", Verdict::Block("HTTP")),
            (b"SSH-2.0-OpenSSH", Verdict::Allow),
            (b"hello", Verdict::Allow),
            (b"GE", Verdict::NeedMore),
            (b"\x05", Verdict::NeedMore),
            (b"TOOLONGMETHOD x", Verdict::Allow),
        ];
        for (bytes, want) in cases {
            assert_eq!(classify_first_bytes(bytes, ALL), *want, "{bytes:?}");
        }
    }

    #[test]
    fn only_the_chosen_protocols_are_blocked() {
        let http_only = BlockSet {
            http: true,
            ..BlockSet::default()
        };
        assert_eq!(
            classify_first_bytes(b"\x16\x03\x01", http_only),
            Verdict::Allow
        );
        assert_eq!(
            classify_first_bytes(b"\x05\x01\x00", http_only),
            Verdict::Allow
        );
        assert_eq!(
            classify_first_bytes(b"POST /", http_only),
            Verdict::Block("HTTP")
        );
        assert_eq!(
            classify_first_bytes(b"", BlockSet::default()),
            Verdict::Allow
        );
    }
}
