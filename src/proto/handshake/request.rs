//! Handshake request: what the client sends, how the server parses and judges it, and the
//! error responses Go's `http.Error` would write.

use std::fmt;

use super::{auth_token, token_matches, HandshakeError, Parse, EXT_HEADER, MAX_HEAD};
use crate::proto::auth::{
    client_proof, from_hex, same_secret, to_hex, Nonce, NONCE_HEADER, PROOF_HEADER,
};

/// The parts of a handshake request the server looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedRequest {
    /// The HTTP method, e.g. `GET`.
    pub method: String,
    /// The request target as sent, e.g. `/` or `/?x=1`.
    pub target: String,
    /// The `Host` header (the client's `sni`), if any.
    pub host: Option<String>,
    /// The token after `Authorization: Bearer `, if the header has that form.
    pub token: Option<String>,
    /// Our extension header's value, if the client is one of ours.
    pub extension: Option<String>,
    /// The `auth1` client nonce header's value, if any.
    pub nonce: Option<String>,
    /// The `auth1` client proof header's value, if any.
    pub proof: Option<String>,
    /// Length of the head; bytes after it are not part of the handshake.
    pub head_len: usize,
}

impl ParsedRequest {
    /// The path of the target without query, as Go's `r.URL.Path` sees it.
    pub fn path(&self) -> &str {
        let target = self.target.as_str();
        let without_scheme = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"));
        let path = match without_scheme {
            // Absolute form: the path starts at the first `/` after the authority.
            Some(rest) => rest.find('/').map_or("", |i| &rest[i..]),
            None => target,
        };
        path.split(['?', '#']).next().unwrap_or("")
    }
}

/// Why the server refuses a handshake request; each maps to Go's status and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Not a `GET` (405).
    MethodNotAllowed,
    /// A path other than `/` (404).
    NotFound,
    /// Missing or wrong bearer token (401).
    Unauthorized,
}

impl Rejection {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            Rejection::MethodNotAllowed => 405,
            Rejection::NotFound => 404,
            Rejection::Unauthorized => 401,
        }
    }

    /// The reason phrase, which is also Go's response body (plus a newline).
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::MethodNotAllowed => "Method Not Allowed",
            Rejection::NotFound => "Not Found",
            Rejection::Unauthorized => "Unauthorized",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status(), self.reason())
    }
}

impl std::error::Error for Rejection {}

/// The request a Go v1.14.0 client writes, byte for byte: `Host`, `User-Agent`, the user
/// headers sorted by name (`Authorization`, then our optional `X-Np-Ext`), and the
/// transport's `Accept-Encoding: gzip` last. Control characters in `host` or `extensions`
/// are dropped so they cannot split the head.
pub fn encode_request(host: &str, key: &str, extensions: Option<&str>) -> Vec<u8> {
    encode_request_ours(host, key, true, extensions, None)
}

/// [`encode_request`] with our `auth1` nonce and proof headers (after `X-Np-Ext`, in name
/// order) and, unless `bearer`, without the static token: a client that talks only to our
/// servers (`auth=strict`) does not hand out the token Go checks (PROTOCOL.md §9.2).
pub fn encode_request_ours(
    host: &str,
    key: &str,
    bearer: bool,
    extensions: Option<&str>,
    nonce: Option<&Nonce>,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(300);
    out.extend_from_slice(b"GET / HTTP/1.1\r\nHost: ");
    push_header_value(&mut out, host);
    out.extend_from_slice(b"\r\nUser-Agent: Go-http-client/1.1\r\n");
    if bearer {
        out.extend_from_slice(b"Authorization: Bearer ");
        out.extend_from_slice(auth_token(key).as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    let mut header = |name: &str, value: &str| {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        push_header_value(&mut out, value);
        out.extend_from_slice(b"\r\n");
    };
    if let Some(ext) = extensions {
        header(EXT_HEADER, ext);
    }
    if let Some(n) = nonce {
        header(NONCE_HEADER, &n.to_hex());
        header(PROOF_HEADER, &to_hex(&client_proof(key, n)));
    }
    out.extend_from_slice(b"Accept-Encoding: gzip\r\n\r\n");
    out
}

fn push_header_value(out: &mut Vec<u8>, value: &str) {
    out.extend(value.bytes().filter(|b| !b.is_ascii_control()));
}

/// Parses a request head from the bytes read so far. [`Parse::Partial`] means read more;
/// a head that does not end within [`MAX_HEAD`] bytes is an error.
pub fn parse_request(buf: &[u8]) -> Result<Parse<ParsedRequest>, HandshakeError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) if n <= MAX_HEAD => n,
        Ok(httparse::Status::Complete(_)) => {
            return Err(HandshakeError::HeadTooLarge { limit: MAX_HEAD })
        }
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Parse::Partial),
        Ok(httparse::Status::Partial) => {
            return Err(HandshakeError::HeadTooLarge { limit: MAX_HEAD })
        }
        Err(e) => return Err(HandshakeError::BadHttp(e)),
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let token = header("Authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_owned));
    Ok(Parse::Complete(ParsedRequest {
        method: req.method.unwrap_or_default().to_owned(),
        target: req.path.unwrap_or_default().to_owned(),
        host: header("Host"),
        token,
        extension: header(EXT_HEADER),
        nonce: header(NONCE_HEADER),
        proof: header(PROOF_HEADER),
        head_len,
    }))
}

/// What a request proved about its sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proved {
    /// Go's static bearer token only (a Go client, or ours without the profile).
    Token,
    /// The `auth1` proof over this fresh client nonce (and the token, if it sent one).
    Auth1(Nonce),
}

/// Judges a parsed request as the Go server does: method, then path, then the key — the
/// bearer token if sent, and our `auth1` proof if sent (both compared in constant time,
/// each must be right when present, at least one must be there).
pub fn check_request(req: &ParsedRequest, key: &str) -> Result<Proved, Rejection> {
    if req.method != "GET" {
        return Err(Rejection::MethodNotAllowed);
    }
    if req.path() != "/" {
        return Err(Rejection::NotFound);
    }
    if let Some(token) = req.token.as_deref() {
        if !token_matches(token, key) {
            return Err(Rejection::Unauthorized);
        }
    }
    if let (Some(nonce), Some(proof)) = (req.nonce.as_deref(), req.proof.as_deref()) {
        let nonce = Nonce::from_hex(nonce).ok_or(Rejection::Unauthorized)?;
        let proof = from_hex(proof).ok_or(Rejection::Unauthorized)?;
        return if same_secret(&proof, &client_proof(key, &nonce)) {
            Ok(Proved::Auth1(nonce))
        } else {
            Err(Rejection::Unauthorized)
        };
    }
    match req.token {
        Some(_) => Ok(Proved::Token),
        None => Err(Rejection::Unauthorized),
    }
}

/// The response Go's `http.Error` writes for `r` (its handler also sets
/// `Connection: close`), headers in Go's order; only the `Date` header is left out.
pub fn encode_rejection(r: Rejection) -> Vec<u8> {
    let body_len = r.reason().len() + 1;
    format!(
        "HTTP/1.1 {} {}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\n\
         X-Content-Type-Options: nosniff\r\nContent-Length: {}\r\n\r\n{}\n",
        r.status(),
        r.reason(),
        body_len,
        r.reason()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_REQUEST: &str = "GET / HTTP/1.1\r\nHost: none\r\nUser-Agent: Go-http-client/1.1\r\n\
        Authorization: Bearer e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f\r\n\
        Accept-Encoding: gzip\r\n\r\n";

    fn complete(buf: &[u8]) -> ParsedRequest {
        match parse_request(buf).unwrap() {
            Parse::Complete(req) => req,
            Parse::Partial => panic!("partial"),
        }
    }

    #[test]
    fn request_is_byte_identical_to_go_net_http() {
        assert_eq!(encode_request("none", "mykey", None), GO_REQUEST.as_bytes());
    }

    #[test]
    fn extension_header_sits_between_user_headers_and_accept_encoding() {
        let req = encode_request("tunnel.example", "mykey", Some("v1 nonce"));
        let text = String::from_utf8(req).unwrap();
        assert!(text.contains("2745f\r\nX-Np-Ext: v1 nonce\r\nAccept-Encoding: gzip\r\n\r\n"));
        assert!(text.contains("\r\nHost: tunnel.example\r\n"));
    }

    #[test]
    fn control_characters_cannot_inject_headers() {
        let req = encode_request("evil\r\nX: y", "k", Some("a\nb"));
        let parsed = complete(&req);
        assert_eq!(parsed.host.as_deref(), Some("evilX: y"));
        assert_eq!(parsed.extension.as_deref(), Some("ab"));
    }

    #[test]
    fn server_parses_go_request_and_accepts_the_right_key() {
        let req = complete(GO_REQUEST.as_bytes());
        assert_eq!(req.method, "GET");
        assert_eq!(req.path(), "/");
        assert_eq!(req.host.as_deref(), Some("none"));
        assert_eq!(req.extension, None);
        assert_eq!(req.head_len, GO_REQUEST.len());
        assert_eq!(check_request(&req, "mykey"), Ok(Proved::Token));
        assert_eq!(check_request(&req, "wrong"), Err(Rejection::Unauthorized));
    }

    #[test]
    fn every_prefix_of_a_request_is_partial() {
        let full = encode_request("h", "k", Some("x"));
        for cut in 0..full.len() {
            assert_eq!(
                parse_request(&full[..cut]).unwrap(),
                Parse::Partial,
                "cut {cut}"
            );
        }
        let mut with_tail = full.clone();
        with_tail.extend_from_slice(b"\x00\x01");
        assert_eq!(complete(&with_tail).head_len, full.len());
    }

    #[test]
    fn the_auth1_proof_is_checked_with_or_without_the_token() {
        let nonce = Nonce([7; 32]);
        let with_token = encode_request_ours("none", "mykey", true, Some("auth1"), Some(&nonce));
        let without = encode_request_ours("none", "mykey", false, Some("auth1"), Some(&nonce));
        let text = String::from_utf8(without.clone()).unwrap();
        assert!(
            !text.contains("Authorization"),
            "strict clients send no token"
        );
        assert!(text.contains("X-Np-Nonce: 0707"));
        for req in [&with_token, &without] {
            assert_eq!(
                check_request(&complete(req), "mykey"),
                Ok(Proved::Auth1(nonce))
            );
            assert_eq!(
                check_request(&complete(req), "wrong"),
                Err(Rejection::Unauthorized)
            );
        }
        // A right proof does not excuse a wrong token, and a forged proof fails.
        let mut parsed = complete(&with_token);
        parsed.token = Some(auth_token("wrong"));
        assert_eq!(
            check_request(&parsed, "mykey"),
            Err(Rejection::Unauthorized)
        );
        let mut forged = complete(&without);
        forged.proof = Some("00".repeat(32));
        assert_eq!(
            check_request(&forged, "mykey"),
            Err(Rejection::Unauthorized)
        );
        forged.proof = Some("not hex".into());
        assert_eq!(
            check_request(&forged, "mykey"),
            Err(Rejection::Unauthorized)
        );
    }

    #[test]
    fn method_path_and_token_are_checked_in_go_order() {
        let cases: [(&[u8], Result<Proved, Rejection>); 6] = [
            (b"POST / HTTP/1.1\r\n\r\n", Err(Rejection::MethodNotAllowed)),
            (b"GET /x HTTP/1.1\r\n\r\n", Err(Rejection::NotFound)),
            (b"GET / HTTP/1.1\r\n\r\n", Err(Rejection::Unauthorized)),
            (b"GET / HTTP/1.1\r\nAuthorization: Basic abc\r\n\r\n", Err(Rejection::Unauthorized)),
            (b"GET /?a=1 HTTP/1.1\r\nauthorization: Bearer e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f\r\n\r\n", Ok(Proved::Token)),
            (b"GET http://h/ HTTP/1.0\r\nAuthorization: Bearer e1b24265bf2e0b20c81837993b4f1415f7b68c503114d100a40601eca6a2745f\r\n\r\n", Ok(Proved::Token)),
        ];
        for (bytes, want) in cases {
            assert_eq!(check_request(&complete(bytes), "mykey"), want, "{bytes:?}");
        }
    }

    #[test]
    fn garbage_and_oversized_heads_are_errors() {
        assert!(matches!(
            parse_request(b"\x16\x03\x01\x00"),
            Err(HandshakeError::BadHttp(_))
        ));
        let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 1, b'a');
        assert!(matches!(
            parse_request(&big),
            Err(HandshakeError::HeadTooLarge { .. })
        ));
        big.truncate(MAX_HEAD - 1);
        assert_eq!(parse_request(&big).unwrap(), Parse::Partial);
    }

    #[test]
    fn rejections_match_go_http_error() {
        assert_eq!(
            encode_rejection(Rejection::Unauthorized),
            b"HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\
              Content-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n\
              Content-Length: 13\r\n\r\nUnauthorized\n"
        );
        let not_found = String::from_utf8(encode_rejection(Rejection::NotFound)).unwrap();
        assert!(not_found.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(not_found.ends_with("Content-Length: 10\r\n\r\nNot Found\n"));
        let r = encode_rejection(Rejection::MethodNotAllowed);
        assert!(r.ends_with(b"Content-Length: 19\r\n\r\nMethod Not Allowed\n"));
    }
}
