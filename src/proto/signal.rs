//! Control-channel signals of NodePass v1.14.0: `base64(XOR(json, key)) + "\n"` lines.
//!
//! The JSON object carries `action` and, when not empty, `remote`, `id` and `fp`, in that
//! order (PROTOCOL.md §3.A.3). The XOR restarts at key byte 0 for every message.

use std::fmt;

use super::base64;

/// What a signal asks the peer to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Liveness probe; the peer answers [`Action::Pong`].
    Ping,
    /// Answer to a ping.
    Pong,
    /// A user TCP connection arrived: take pool connection `id`, dial the target for `remote`.
    Tcp,
    /// A new UDP flow from `remote`: take pool connection `id` and relay datagrams.
    Udp,
    /// Close every idle pool connection.
    Flush,
    /// TLS fingerprint check of pool connection `id` against `fp`.
    Verify,
    /// An action this version does not know; receivers skip it instead of failing.
    Unknown(String),
}

impl Action {
    /// The wire word of this action.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Ping => "ping",
            Action::Pong => "pong",
            Action::Tcp => "tcp",
            Action::Udp => "udp",
            Action::Flush => "flush",
            Action::Verify => "verify",
            Action::Unknown(word) => word,
        }
    }

    /// The action named by a wire word; unknown words are kept in [`Action::Unknown`].
    pub fn from_word(word: &str) -> Action {
        match word {
            "ping" => Action::Ping,
            "pong" => Action::Pong,
            "tcp" => Action::Tcp,
            "udp" => Action::Udp,
            "flush" => Action::Flush,
            "verify" => Action::Verify,
            other => Action::Unknown(other.to_owned()),
        }
    }
}

/// One control-channel message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    /// What to do.
    pub action: Action,
    /// User address `ip:port` (`tcp`, `udp`).
    pub remote: Option<String>,
    /// Pool connection id, 8 lowercase hex chars (`tcp`, `udp`, `verify`).
    pub id: Option<String>,
    /// Certificate fingerprint `sha256:AB:CD:…` (`verify`).
    pub fp: Option<String>,
}

impl Signal {
    /// A signal with only an action.
    pub fn new(action: Action) -> Signal {
        Signal {
            action,
            remote: None,
            id: None,
            fp: None,
        }
    }
}

/// Why a received signal line could not be decoded. The link stays up: Go logs and skips.
#[derive(Debug)]
pub enum SignalError {
    /// The line is not padded standard base64; `at` is the offset of the first bad byte.
    BadBase64 {
        /// Offset in the line (without its newline).
        at: usize,
    },
    /// The XOR-decoded bytes are not JSON.
    BadJson(serde_json::Error),
    /// The JSON is valid but not an object.
    NotAnObject,
    /// A known field has the wrong JSON type (Go's decoder rejects the whole message).
    BadField(&'static str),
    /// A line grew past the limit without a newline (see [`LineBuf`](super::LineBuf)).
    LineTooLong {
        /// The limit in bytes.
        limit: usize,
    },
}

impl fmt::Display for SignalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignalError::BadBase64 { at } => write!(f, "signal is not base64 (byte {at})"),
            SignalError::BadJson(e) => write!(f, "signal is not JSON: {e}"),
            SignalError::NotAnObject => f.write_str("signal JSON is not an object"),
            SignalError::BadField(name) => write!(f, "signal field `{name}` is not a string"),
            SignalError::LineTooLong { limit } => {
                write!(f, "signal line longer than {limit} bytes")
            }
        }
    }
}

impl std::error::Error for SignalError {}

/// XORs `data` in place with the repeating `key`, starting at key byte 0. An empty key
/// leaves the data unchanged (NodePass never has one: it derives a key from the port).
pub fn xor_in_place(data: &mut [u8], key: &[u8]) {
    if key.is_empty() {
        return;
    }
    for (b, k) in data.iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

/// Encodes `sig` as one wire line, `\n` included.
pub fn encode_line(sig: &Signal, key: &str) -> Vec<u8> {
    let mut json = to_json(sig);
    xor_in_place(&mut json, key.as_bytes());
    let mut line = Vec::with_capacity(json.len().div_ceil(3) * 4 + 1);
    base64::encode_into(&json, &mut line);
    line.push(b'\n');
    line
}

/// Decodes one wire line (with or without its trailing `\n` or `\r\n`).
pub fn decode_line(line: &[u8], key: &str) -> Result<Signal, SignalError> {
    let text = trim_newline(line);
    let mut json = Vec::new();
    base64::decode_into(text, &mut json).map_err(|at| SignalError::BadBase64 { at })?;
    xor_in_place(&mut json, key.as_bytes());
    from_json(&json)
}

fn trim_newline(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The JSON object exactly as Go's `json.Marshal` writes it for the v1.14.0 struct.
fn to_json(sig: &Signal) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(b"{\"action\":");
    push_json_string(&mut out, sig.action.as_str());
    let fields = [("remote", &sig.remote), ("id", &sig.id), ("fp", &sig.fp)];
    for (name, value) in fields {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            push_json_string(&mut out, v);
        }
    }
    out.push(b'}');
    out
}

/// Appends `s` as a JSON string with Go's escaping (HTML-safe `<`, `>`, `&`, and U+2028/9).
fn push_json_string(out: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&') => {
                let b = c as u8;
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&[HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
            }
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}

fn from_json(json: &[u8]) -> Result<Signal, SignalError> {
    let value: serde_json::Value = serde_json::from_slice(json).map_err(SignalError::BadJson)?;
    let serde_json::Value::Object(map) = value else {
        return Err(SignalError::NotAnObject);
    };
    // Go matches struct fields case-insensitively, but every NodePass writes lowercase;
    // we accept lowercase only.
    let field = |name: &'static str| -> Result<Option<String>, SignalError> {
        match map.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) if s.is_empty() => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(SignalError::BadField(name)),
        }
    };
    let action = field("action")?.unwrap_or_default();
    Ok(Signal {
        action: Action::from_word(&action),
        remote: field("remote")?,
        id: field("id")?,
        fp: field("fp")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_with_key_mykey_matches_the_observed_go_line() {
        let line = encode_line(&Signal::new(Action::Ping), "mykey");
        assert_eq!(line, b"FlsKBg0EFgVHQ08JAgseTwQ=\n");
        assert_eq!(
            decode_line(&line, "mykey").unwrap(),
            Signal::new(Action::Ping)
        );
    }

    #[test]
    fn tcp_signal_fields_keep_go_order_and_match_a_reference_encoding() {
        let sig = Signal {
            action: Action::Tcp,
            remote: Some("127.0.0.1:5555".into()),
            id: Some("cb5baf6b".into()),
            fp: None,
        };
        assert_eq!(
            to_json(&sig),
            br#"{"action":"tcp","remote":"127.0.0.1:5555","id":"cb5baf6b"}"#
        );
        // Computed independently (Python: base64(xor(json, key))).
        let golden =
            "HhRZARFbDVpHDBoWBkJAGEdEXQ8KRgcWXxQJUFIcUhpVGAlYUAdXAUcaGgsBEFgWBlQNAARUVFZHSw==\n";
        assert_eq!(encode_line(&sig, "e68be2b4"), golden.as_bytes());
    }

    #[test]
    fn every_action_round_trips_with_and_without_crlf() {
        let actions = [
            Action::Ping,
            Action::Pong,
            Action::Tcp,
            Action::Udp,
            Action::Flush,
            Action::Verify,
            Action::Unknown("later".into()),
        ];
        for action in actions {
            let sig = Signal {
                action,
                remote: Some("[2001:db8::1]:443".into()),
                id: Some("00000000".into()),
                fp: Some("sha256:AB:CD".into()),
            };
            let line = encode_line(&sig, "k3y");
            assert_eq!(decode_line(&line, "k3y").unwrap(), sig);
            let mut crlf = line[..line.len() - 1].to_vec();
            crlf.extend_from_slice(b"\r\n");
            assert_eq!(decode_line(&crlf, "k3y").unwrap(), sig);
            assert_eq!(decode_line(&line[..line.len() - 1], "k3y").unwrap(), sig);
        }
    }

    #[test]
    fn empty_fields_are_left_out_like_go_omitempty() {
        let sig = Signal {
            action: Action::Verify,
            remote: Some(String::new()),
            id: Some("0a0b0c0d".into()),
            fp: None,
        };
        assert_eq!(to_json(&sig), br#"{"action":"verify","id":"0a0b0c0d"}"#);
        let back = decode_line(&encode_line(&sig, "x"), "x").unwrap();
        assert_eq!(back.remote, None);
    }

    #[test]
    fn strings_are_escaped_as_go_does() {
        let mut out = Vec::new();
        push_json_string(&mut out, "a\"b\\c\n<&>\u{1}\u{2028}é");
        assert_eq!(
            out,
            r#""a\"b\\c\n\u003c\u0026\u003e\u0001\u2028é""#.as_bytes()
        );
        let parsed: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(parsed, "a\"b\\c\n<&>\u{1}\u{2028}é");
    }

    #[test]
    fn malformed_lines_give_the_specific_error() {
        assert!(matches!(
            decode_line(b"@@@@\n", "k"),
            Err(SignalError::BadBase64 { at: 0 })
        ));
        assert!(matches!(
            decode_line(b"abc\n", "k"),
            Err(SignalError::BadBase64 { at: 3 })
        ));
        let not_json = encode_raw(b"{action", "k");
        assert!(matches!(
            decode_line(&not_json, "k"),
            Err(SignalError::BadJson(_))
        ));
        let array = encode_raw(b"[1,2]", "k");
        assert!(matches!(
            decode_line(&array, "k"),
            Err(SignalError::NotAnObject)
        ));
        let number = encode_raw(br#"{"action":"tcp","id":7}"#, "k");
        assert!(matches!(
            decode_line(&number, "k"),
            Err(SignalError::BadField("id"))
        ));
    }

    #[test]
    fn unknown_fields_are_ignored_and_a_missing_action_is_unknown() {
        let line = encode_raw(br#"{"action":"pong","extra":{"a":1}}"#, "key");
        assert_eq!(
            decode_line(&line, "key").unwrap(),
            Signal::new(Action::Pong)
        );
        let line = encode_raw(br#"{"id":"01020304"}"#, "key");
        let sig = decode_line(&line, "key").unwrap();
        assert_eq!(sig.action, Action::Unknown(String::new()));
        assert_eq!(sig.id.as_deref(), Some("01020304"));
    }

    #[test]
    fn a_wrong_key_does_not_decode_to_the_signal() {
        let line = encode_line(&Signal::new(Action::Flush), "right");
        assert!(decode_line(&line, "wrong").is_err());
    }

    fn encode_raw(json: &[u8], key: &str) -> Vec<u8> {
        let mut data = json.to_vec();
        xor_in_place(&mut data, key.as_bytes());
        let mut line = Vec::new();
        base64::encode_into(&data, &mut line);
        line.push(b'\n');
        line
    }
}
