//! Pure parsing of request heads and bodies (Content-Length and chunked), with limits.

use super::limits::{MAX_BODY, MAX_HEAD};
use super::message::{Reject, Request};

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl Framing {
    /// True when a body follows the head.
    pub fn expects_body(&self) -> bool {
        !matches!(self, Framing::None | Framing::Length(0))
    }
}

const MAX_HEADERS: usize = 100;

/// Parse the head at the start of `buf`: `Ok(None)` if incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<(usize, Request, Framing)>, Reject> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject(431, "Too many header fields")),
        Err(_) => return Err(Reject(400, "Bad request")),
    };
    if n > MAX_HEAD {
        return Err(Reject(431, "Request header fields too large"));
    }
    let method = req.method.unwrap_or("").to_string();
    let target = req.path.unwrap_or("/");
    let (raw_path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = unescape_path(raw_path).ok_or(Reject(400, "Bad request path"))?;
    let mut hs: Vec<(String, String)> = req
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).trim().to_string(),
            )
        })
        .collect();
    let version = if req.version == Some(0) { "1.0" } else { "1.1" };
    hs.push((":version".to_string(), version.to_string()));
    let request = Request {
        method,
        path,
        query: query.to_string(),
        headers: hs,
        body: Vec::new(),
    };
    let framing = framing(&request)?;
    Ok(Some((n, request, framing)))
}

fn framing(req: &Request) -> Result<Framing, Reject> {
    let te = req.header("transfer-encoding");
    let cls: Vec<&str> = req
        .headers
        .iter()
        .filter(|(k, _)| k == "content-length")
        .map(|(_, v)| v.as_str())
        .collect();
    if let Some(te) = te {
        if !cls.is_empty() {
            return Err(Reject(400, "Both Content-Length and Transfer-Encoding"));
        }
        if te.eq_ignore_ascii_case("chunked") {
            return Ok(Framing::Chunked);
        }
        return Err(Reject(501, "Unsupported transfer encoding"));
    }
    match cls.as_slice() {
        [] => Ok(Framing::None),
        [one] => {
            // Digits only, as Go's `ParseUint`: Rust's `parse` would also take `+5`.
            let n: usize = Some(*one)
                .filter(|v| v.bytes().all(|c| c.is_ascii_digit()))
                .and_then(|v| v.parse().ok())
                .ok_or(Reject(400, "Invalid Content-Length"))?;
            if n > MAX_BODY {
                return Err(Reject(413, "Request body too large"));
            }
            Ok(Framing::Length(n))
        }
        _ => Err(Reject(400, "Duplicate Content-Length")),
    }
}

/// Take the complete body from the start of `buf` (removing it), or `Ok(None)` if more
/// bytes are needed.
pub fn take_body(framing: &Framing, buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, Reject> {
    match *framing {
        Framing::None => Ok(Some(Vec::new())),
        Framing::Length(n) => {
            if buf.len() < n {
                return Ok(None);
            }
            Ok(Some(buf.drain(..n).collect()))
        }
        Framing::Chunked => {
            let Some((body, used)) = dechunk(buf)? else {
                return Ok(None);
            };
            buf.drain(..used);
            Ok(Some(body))
        }
    }
}

/// Decode a complete chunked body: `(body, bytes consumed)`, or `None` if incomplete.
fn dechunk(buf: &[u8]) -> Result<Option<(Vec<u8>, usize)>, Reject> {
    let mut body = Vec::new();
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > 1024 {
                Err(Reject(400, "Bad chunk size"))
            } else {
                Ok(None)
            };
        };
        let line =
            std::str::from_utf8(&buf[pos..pos + eol]).map_err(|_| Reject(400, "Bad chunk size"))?;
        let hex = line.split(';').next().unwrap_or("").trim();
        // Hex digits only, as Go's chunked reader: `from_str_radix` alone takes `+5`.
        if !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
            return Err(Reject(400, "Bad chunk size"));
        }
        let size = usize::from_str_radix(hex, 16).map_err(|_| Reject(400, "Bad chunk size"))?;
        pos += eol + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(e) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += e + 2;
                if e == 0 {
                    return Ok(Some((body, pos)));
                }
            }
        }
        // `size` is the peer's number: compared without overflow (a huge one wrapped
        // past this check and the slice below, found by fuzzing).
        if size > MAX_BODY.saturating_sub(body.len()) {
            return Err(Reject(413, "Request body too large"));
        }
        if buf.len().saturating_sub(pos) < size + 2 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[pos..pos + size]);
        if &buf[pos + size..pos + size + 2] != b"\r\n" {
            return Err(Reject(400, "Bad chunk"));
        }
        pos += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// Percent-decode a path (`+` stays `+`).
fn unescape_path(p: &str) -> Option<String> {
    if !p.contains('%') {
        return Some(p.to_string());
    }
    crate::config::query_unescape(&p.replace('+', "%2B"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_body_is_reassembled_and_its_length_consumed() {
        let mut buf = b"4\r\nWiki\r\n5;x=y\r\npedia\r\n0\r\n\r\nNEXT".to_vec();
        let body = take_body(&Framing::Chunked, &mut buf)
            .ok()
            .flatten()
            .unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(buf, b"NEXT");
    }

    #[test]
    fn a_chunk_size_is_hex_digits_only() {
        // `from_str_radix` alone accepts a sign (found by auditing after a fuzz finding).
        for bad in [&b"+4\r\nWiki\r\n0\r\n\r\n"[..], b"-0\r\n\r\n", b"\r\n\r\n"] {
            let mut buf = bad.to_vec();
            assert!(matches!(
                take_body(&Framing::Chunked, &mut buf),
                Err(Reject(400, _))
            ));
        }
    }

    #[test]
    fn a_huge_chunk_size_is_too_large_not_an_overflow() {
        // Found by fuzzing (fuzz/regressions/master_http/crash-6291…): the size added to
        // the body length wrapped past the limit in release builds.
        for size in ["ffffffffffffffff", "fffffffffffffff0", "1000000000"] {
            let mut buf = format!("1\r\nx\r\n{size}\r\nabc").into_bytes();
            assert!(matches!(
                take_body(&Framing::Chunked, &mut buf),
                Err(Reject(413, _))
            ));
        }
    }

    #[test]
    fn a_content_length_is_digits_only() {
        let plus = b"POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx";
        assert!(matches!(parse_head(plus), Err(Reject(400, _))));
    }

    #[test]
    fn an_incomplete_chunked_body_asks_for_more() {
        let mut buf = b"4\r\nWi".to_vec();
        assert!(matches!(take_body(&Framing::Chunked, &mut buf), Ok(None)));
    }

    #[test]
    fn oversized_and_ambiguous_bodies_are_refused() {
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert!(matches!(parse_head(big.as_bytes()), Err(Reject(413, _))));
        let both = b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse_head(both), Err(Reject(400, _))));
        assert!(matches!(
            parse_head(b"GARBAGE\r\n\r\n"),
            Err(Reject(400, _))
        ));
    }

    #[test]
    fn the_path_is_decoded_and_the_query_kept_raw() {
        let (_, req, f) =
            parse_head(b"GET /api/v1/instances/%2A%2A?target=a:1 HTTP/1.1\r\nHost: x\r\n\r\n")
                .ok()
                .flatten()
                .unwrap();
        assert_eq!(req.path, "/api/v1/instances/**");
        assert_eq!(req.query, "target=a:1");
        assert_eq!(f, Framing::None);
    }
}
