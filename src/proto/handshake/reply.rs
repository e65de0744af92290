//! Handshake reply: the server's `200` with the JSON tunnel configuration, and the client's
//! parser for it (Content-Length, chunked, or close-delimited bodies).

use serde_json::{Map, Value};

use super::{Flow, HandshakeError, Parse, TunnelConfig, EXT_FIELD, MAX_BODY, MAX_HEAD};
use crate::proto::auth::{FP_FIELD, NONCE_FIELD, PROOF_FIELD};

/// A complete, successful handshake reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The tunnel configuration announced by the server.
    pub config: TunnelConfig,
    /// Our extension field, present only when the server is one of ours.
    pub extension: Option<String>,
    /// The `auth1` fields of one of ours (server nonce, proof, certificate fingerprint).
    pub auth: AuthFields,
    /// Bytes of `buf` the reply used (head and body).
    pub consumed: usize,
}

/// The `auth1` fields our server adds to a reply for one of ours (hex nonce and proof, the
/// certificate fingerprint for tls 1/2); Go clients ignore them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFields {
    /// `nonce`: the server's nonce.
    pub nonce: Option<String>,
    /// `proof`: the server's proof.
    pub proof: Option<String>,
    /// `fp`: the fingerprint every TLS pool connection must show.
    pub fp: Option<String>,
}

/// The reply Go's handler produces: `Connection: close` and `Content-Type` (sorted as Go
/// writes handler headers), then `Content-Length`; the body is Go's `json.Encoder` output,
/// keys in alphabetical order, `max` a number, the rest strings, a final newline. Our
/// extension and `auth1` fields, if any, are more string fields in their alphabetical
/// places. `Date` is left out.
pub fn encode_reply(cfg: &TunnelConfig, extensions: Option<&str>, auth: &AuthFields) -> Vec<u8> {
    let field = |name: &str, value: &Option<String>| match value {
        Some(v) => format!("\"{name}\":{},", Value::from(v.as_str())),
        None => String::new(),
    };
    let mut body = String::with_capacity(64);
    body.push('{');
    body.push_str(&field(EXT_FIELD, &extensions.map(str::to_owned)));
    body.push_str(&format!("\"flow\":\"{}\",", cfg.flow.as_str()));
    body.push_str(&field(FP_FIELD, &auth.fp));
    body.push_str(&format!("\"max\":{},", cfg.max));
    body.push_str(&field(NONCE_FIELD, &auth.nonce));
    body.push_str(&field(PROOF_FIELD, &auth.proof));
    body.push_str(&format!(
        "\"tls\":\"{}\",\"type\":\"{}\"}}\n",
        cfg.tls, cfg.pool_type
    ));
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Parses the reply from the bytes read so far. A close-delimited body (no length, not
/// chunked) stays [`Parse::Partial`] until [`parse_reply_at_eof`] is called.
pub fn parse_reply(buf: &[u8]) -> Result<Parse<Reply>, HandshakeError> {
    parse(buf, false)
}

/// Parses the reply once the peer has closed the connection: everything read is all there
/// is, so an incomplete message is [`HandshakeError::Truncated`].
pub fn parse_reply_at_eof(buf: &[u8]) -> Result<Reply, HandshakeError> {
    match parse(buf, true)? {
        Parse::Complete(reply) => Ok(reply),
        Parse::Partial => Err(HandshakeError::Truncated),
    }
}

/// How the body of a reply is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn parse(buf: &[u8], eof: bool) -> Result<Parse<Reply>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Parse::Partial),
        Ok(_) => return Err(HandshakeError::HeadTooLarge { limit: MAX_HEAD }),
        Err(e) => return Err(HandshakeError::BadHttp(e)),
    };
    let code = resp.code.unwrap_or_default();
    if code != 200 {
        return Err(HandshakeError::Status(code));
    }
    let rest = &buf[head_len..];
    let body = match framing(resp.headers)? {
        Framing::Length(n) if rest.len() >= n => Some((rest[..n].to_vec(), n)),
        Framing::Length(_) => None,
        Framing::Chunked => dechunk(rest)?,
        Framing::UntilClose if rest.len() > MAX_BODY => {
            return Err(HandshakeError::BadContentLength)
        }
        Framing::UntilClose => eof.then(|| (rest.to_vec(), rest.len())),
    };
    let Some((body, body_len)) = body else {
        return Ok(Parse::Partial);
    };
    let (config, extension, auth) = decode_body(&body)?;
    Ok(Parse::Complete(Reply {
        config,
        extension,
        auth,
        consumed: head_len + body_len,
    }))
}

fn framing(headers: &[httparse::Header<'_>]) -> Result<Framing, HandshakeError> {
    let get = |name: &str| headers.iter().find(|h| h.name.eq_ignore_ascii_case(name));
    if let Some(te) = get("Transfer-Encoding") {
        if te.value.eq_ignore_ascii_case(b"chunked") {
            return Ok(Framing::Chunked);
        }
    }
    match get("Content-Length") {
        None => Ok(Framing::UntilClose),
        Some(h) => std::str::from_utf8(h.value)
            .ok()
            .map(str::trim)
            // Digits only, as Go's `ParseUint`: Rust's `parse` would also take `+5`.
            .filter(|v| v.bytes().all(|c| c.is_ascii_digit()))
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n <= MAX_BODY)
            .map(Framing::Length)
            .ok_or(HandshakeError::BadContentLength),
    }
}

/// Decodes a chunked body: `Some((body, wire length))` when complete, `None` for more.
fn dechunk(mut rest: &[u8]) -> Result<Option<(Vec<u8>, usize)>, HandshakeError> {
    let total = rest.len();
    let mut body = Vec::new();
    loop {
        let (skip, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(v)) => v,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(HandshakeError::BadChunk),
        };
        let size = usize::try_from(size).map_err(|_| HandshakeError::BadChunk)?;
        // The peer's number: compared without overflow (the master's chunked reader
        // wrapped here, found by fuzzing; this one is the same shape).
        if size > MAX_BODY.saturating_sub(body.len()) {
            return Err(HandshakeError::BadContentLength);
        }
        rest = &rest[skip..];
        if size == 0 {
            // No trailers from Go here: the body ends with an empty line.
            return match rest {
                [b'\r', b'\n', ..] => Ok(Some((body, total - rest.len() + 2))),
                [] | [b'\r'] => Ok(None),
                _ => Err(HandshakeError::BadChunk),
            };
        }
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if &rest[size..size + 2] != b"\r\n" {
            return Err(HandshakeError::BadChunk);
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn decode_body(body: &[u8]) -> Result<(TunnelConfig, Option<String>, AuthFields), HandshakeError> {
    let value: Value = serde_json::from_slice(body).map_err(HandshakeError::BadJson)?;
    let Value::Object(map) = value else {
        return Err(HandshakeError::BadField("body"));
    };
    let flow = match map.get("flow").and_then(Value::as_str) {
        Some("+") => Flow::Plus,
        Some("-") => Flow::Minus,
        _ => return Err(HandshakeError::BadField("flow")),
    };
    let max = match map.get("max") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_u64().ok_or(HandshakeError::BadField("max"))?,
        Some(Value::String(s)) => s.parse().map_err(|_| HandshakeError::BadField("max"))?,
        Some(_) => return Err(HandshakeError::BadField("max")),
    };
    let config = TunnelConfig {
        flow,
        max: u32::try_from(max).unwrap_or(u32::MAX),
        tls: code_field(&map, "tls", 2),
        pool_type: code_field(&map, "type", 3),
    };
    let text = |name: &str| map.get(name).and_then(Value::as_str).map(str::to_owned);
    let auth = AuthFields {
        nonce: text(NONCE_FIELD),
        proof: text(PROOF_FIELD),
        fp: text(FP_FIELD),
    };
    Ok((config, text(EXT_FIELD), auth))
}

/// A digit code as Go's client reads it: it switches on the string and treats anything
/// it does not know as 0. Numbers are accepted too.
fn code_field(map: &Map<String, Value>, name: &str, highest: u8) -> u8 {
    let code = match map.get(name) {
        Some(Value::String(s)) => s.parse::<u8>().ok(),
        Some(Value::Number(n)) => n.as_u64().and_then(|v| u8::try_from(v).ok()),
        _ => None,
    };
    code.filter(|&c| c <= highest).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN: &[u8] =
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\
        Content-Length: 42\r\n\r\n{\"flow\":\"+\",\"max\":8,\"tls\":\"0\",\"type\":\"0\"}\n";

    fn cfg(flow: Flow, max: u32, tls: u8) -> TunnelConfig {
        TunnelConfig {
            flow,
            max,
            tls,
            pool_type: 0,
        }
    }

    fn complete(buf: &[u8]) -> Reply {
        match parse_reply(buf).unwrap() {
            Parse::Complete(r) => r,
            Parse::Partial => panic!("partial"),
        }
    }

    #[test]
    fn reply_matches_go_bytes_and_parses_back() {
        let bytes = encode_reply(&cfg(Flow::Plus, 8, 0), None, &AuthFields::default());
        assert_eq!(bytes, GOLDEN);
        let reply = complete(GOLDEN);
        assert_eq!(reply.config, cfg(Flow::Plus, 8, 0));
        assert_eq!(reply.extension, None);
        assert_eq!(reply.consumed, GOLDEN.len());
    }

    #[test]
    fn extension_field_is_alphabetical_and_round_trips() {
        let bytes = encode_reply(
            &cfg(Flow::Minus, 1024, 1),
            Some("v1 \"n\""),
            &AuthFields::default(),
        );
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.ends_with(
            "{\"ext\":\"v1 \\\"n\\\"\",\"flow\":\"-\",\"max\":1024,\"tls\":\"1\",\"type\":\"0\"}\n"
        ));
        let reply = complete(&bytes);
        assert_eq!(reply.config, cfg(Flow::Minus, 1024, 1));
        assert_eq!(reply.extension.as_deref(), Some("v1 \"n\""));
    }

    #[test]
    fn auth_fields_sit_in_alphabetical_places_and_round_trip() {
        let auth = AuthFields {
            nonce: Some("aa".into()),
            proof: Some("bb".into()),
            fp: Some("sha256:cc".into()),
        };
        let bytes = encode_reply(&cfg(Flow::Plus, 8, 1), Some("auth1"), &auth);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.ends_with(
            "{\"ext\":\"auth1\",\"flow\":\"+\",\"fp\":\"sha256:cc\",\"max\":8,\
             \"nonce\":\"aa\",\"proof\":\"bb\",\"tls\":\"1\",\"type\":\"0\"}\n"
        ));
        let reply = complete(&bytes);
        assert_eq!(reply.auth, auth);
        assert_eq!(reply.config, cfg(Flow::Plus, 8, 1));
    }

    #[test]
    fn every_prefix_is_partial_and_eof_on_a_prefix_is_truncated() {
        for cut in 0..GOLDEN.len() {
            assert_eq!(
                parse_reply(&GOLDEN[..cut]).unwrap(),
                Parse::Partial,
                "cut {cut}"
            );
            assert!(matches!(
                parse_reply_at_eof(&GOLDEN[..cut]),
                Err(HandshakeError::Truncated)
            ));
        }
    }

    #[test]
    fn close_delimited_body_completes_only_at_eof() {
        let bytes = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{\"flow\":\"-\",\"max\":3}\n";
        assert_eq!(parse_reply(bytes).unwrap(), Parse::Partial);
        let reply = parse_reply_at_eof(bytes).unwrap();
        assert_eq!(reply.config, cfg(Flow::Minus, 3, 0));
    }

    #[test]
    fn chunked_body_is_decoded() {
        let bytes = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
            a\r\n{\"flow\":\"+\r\n1a;x=y\r\n\",\"max\":8,\"tls\":\"2\",\"x\":1}\r\n0\r\n\r\n";
        let reply = complete(bytes);
        assert_eq!(reply.config, cfg(Flow::Plus, 8, 2));
        assert_eq!(reply.consumed, bytes.len());
        assert_eq!(
            parse_reply(&bytes[..bytes.len() - 1]).unwrap(),
            Parse::Partial
        );
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabcd";
        assert!(matches!(parse_reply(bad), Err(HandshakeError::BadChunk)));
    }

    #[test]
    fn a_huge_chunk_size_is_refused_not_an_overflow() {
        for size in ["ffffffffffffffff", "fffffffffffffffe", "100000"] {
            let bytes = format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{{\r\n{size}\r\nabc"
            );
            assert!(
                matches!(
                    parse_reply(bytes.as_bytes()),
                    Err(HandshakeError::BadContentLength)
                ),
                "{size}"
            );
        }
    }

    #[test]
    fn non_200_status_is_reported_with_its_code() {
        let bytes =
            crate::proto::handshake::encode_rejection(super::super::Rejection::Unauthorized);
        assert!(matches!(
            parse_reply(&bytes),
            Err(HandshakeError::Status(401))
        ));
    }

    #[test]
    fn codes_follow_go_permissive_rules() {
        let body = |json: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            )
            .into_bytes()
        };
        let r = complete(&body(
            r#"{"flow":"+","max":8,"tls":"9","type":"3","new":[1]}"#,
        ));
        assert_eq!((r.config.tls, r.config.pool_type), (0, 3));
        let r = complete(&body(r#"{"flow":"-","tls":1,"type":"x"}"#));
        assert_eq!((r.config.max, r.config.tls, r.config.pool_type), (0, 1, 0));
        let r = complete(&body(r#"{"flow":"-","max":99999999999}"#));
        assert_eq!(r.config.max, u32::MAX);
    }

    #[test]
    fn broken_bodies_give_specific_errors() {
        let body = |json: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{json}",
                json.len()
            )
            .into_bytes()
        };
        assert!(matches!(
            parse_reply(&body("{")),
            Err(HandshakeError::BadJson(_))
        ));
        assert!(matches!(
            parse_reply(&body("[]")),
            Err(HandshakeError::BadField("body"))
        ));
        assert!(matches!(
            parse_reply(&body(r#"{"flow":"*"}"#)),
            Err(HandshakeError::BadField("flow"))
        ));
        assert!(matches!(
            parse_reply(&body(r#"{"flow":"+","max":-1}"#)),
            Err(HandshakeError::BadField("max"))
        ));
        for bad_len in [&b"x"[..], b"+1", b"-0", b""] {
            let mut head = b"HTTP/1.1 200 OK\r\nContent-Length: ".to_vec();
            head.extend_from_slice(bad_len);
            head.extend_from_slice(b"\r\n\r\n{");
            assert!(matches!(
                parse_reply(&head),
                Err(HandshakeError::BadContentLength)
            ));
        }
        assert!(matches!(
            parse_reply(b"SSH-2.0-x\r\n"),
            Err(HandshakeError::BadHttp(_))
        ));
    }
}
