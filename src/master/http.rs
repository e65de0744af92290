//! A small HTTP/1.1 server on httparse for the master API: one monoio task per connection.
//!
//! Bounds: request head ≤ 16 KiB (431), body ≤ 1 MiB (413), Content-Length or chunked
//! bodies, keep-alive, a read deadline per connection (a slow or idle client is cut off
//! without touching anyone else), and a cap on open connections (503 beyond it).

use std::rc::Rc;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, AsyncWriteRentExt, Split};

use super::body;
use super::core::Master;
use super::sse::Subscriber;

/// Largest request head.
pub const MAX_HEAD: usize = 16 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 1024 * 1024;

/// Connection limits and deadlines.
#[derive(Clone, Debug)]
pub struct HttpLimits {
    /// Time allowed for a whole request (head and body) once its first byte arrived.
    pub request_timeout: Duration,
    /// Time an idle keep-alive connection is kept.
    pub idle_timeout: Duration,
    /// Open connections beyond which new ones get 503.
    pub max_connections: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    /// Method, as sent.
    pub method: String,
    /// Percent-decoded path.
    pub path: String,
    /// Raw query string (after `?`).
    pub query: String,
    /// Header names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

impl Request {
    /// First header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a handler answers.
pub enum Body {
    /// A complete body.
    Full(Vec<u8>),
    /// An event stream fed by this subscriber.
    Events(Rc<Subscriber>),
}

/// A response; CORS headers are added to every one when written.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content-Type, if any.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Body,
}

impl Response {
    /// JSON with Go's trailing newline.
    pub fn json(status: u16, v: &serde_json::Value) -> Self {
        let mut b = v.to_string().into_bytes();
        b.push(b'\n');
        Response {
            status,
            content_type: Some("application/json"),
            body: Body::Full(b),
        }
    }

    /// `{"error": msg}`.
    pub fn error(status: u16, msg: &str) -> Self {
        Self::json(status, &serde_json::json!({ "error": msg }))
    }

    /// No body.
    pub fn empty(status: u16) -> Self {
        Response {
            status,
            content_type: None,
            body: Body::Full(Vec::new()),
        }
    }

    /// A body of the given type.
    pub fn typed(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type: Some(content_type),
            body: Body::Full(body),
        }
    }
}

const CORS: &str = "Access-Control-Allow-Origin: *\r\nAccess-Control-Allow-Methods: GET, PATCH, POST, PUT, DELETE, OPTIONS\r\nAccess-Control-Allow-Headers: Content-Type, Authorization, X-API-Key, Cache-Control\r\n";

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// Serialise a complete response.
pub fn encode(resp: &Response, body: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {} {}\r\n{CORS}", resp.status, reason(resp.status));
    if let Some(ct) = resp.content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    if resp.status != 204 {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str(if keep_alive {
        "Connection: keep-alive\r\n\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A connection-level failure: answer with this error and close.
pub struct Reject(pub u16, pub &'static str);

/// Serve one connection until it closes, errs, times out or becomes an event stream.
pub async fn serve<S>(mut stream: S, m: Rc<Master>, limits: HttpLimits)
where
    S: AsyncReadRent + AsyncWriteRent + Split + 'static,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        let req = match read_request(&mut stream, &mut buf, &limits).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(Reject(status, msg)) => {
                let resp = Response::error(status, msg);
                let Body::Full(b) = &resp.body else { return };
                let _ = write(&mut stream, encode(&resp, b, false)).await;
                let _ = stream.shutdown().await;
                return;
            }
        };
        let keep_alive = wants_keep_alive(&req);
        let resp = super::router::handle(&m, req).await;
        match resp.body {
            Body::Full(ref b) => {
                if write(&mut stream, encode(&resp, b, keep_alive))
                    .await
                    .is_err()
                    || !keep_alive
                {
                    let _ = stream.shutdown().await;
                    return;
                }
            }
            Body::Events(sub) => {
                super::sse_stream::run(stream, sub).await;
                return;
            }
        }
    }
}

/// Write all of `bytes` and flush.
pub async fn write<S: AsyncWriteRent>(s: &mut S, bytes: Vec<u8>) -> std::io::Result<()> {
    let (res, _) = s.write_all(bytes).await;
    res?;
    s.flush().await
}

fn wants_keep_alive(req: &Request) -> bool {
    let conn = req.header("connection").unwrap_or("").to_ascii_lowercase();
    let http10 = req.header(":version") == Some("1.0");
    if conn.contains("close") {
        return false;
    }
    !http10 || conn.contains("keep-alive")
}

/// Read more bytes into `buf` before `deadline`; Ok(false) on a clean EOF.
async fn fill<S: AsyncReadRent>(
    s: &mut S,
    buf: &mut Vec<u8>,
    deadline: Instant,
) -> Result<bool, Reject> {
    let left = deadline.saturating_duration_since(Instant::now());
    let chunk = Vec::with_capacity(8192);
    match monoio::time::timeout(left, s.read(chunk)).await {
        Err(_) => Err(Reject(408, "Request timeout")),
        Ok((Err(_), _)) => Ok(false),
        Ok((Ok(0), _)) => Ok(false),
        Ok((Ok(_), chunk)) => {
            buf.extend_from_slice(&chunk);
            Ok(true)
        }
    }
}

/// Read one request; `Ok(None)` when the client closed or idled out between requests.
async fn read_request<S>(
    s: &mut S,
    buf: &mut Vec<u8>,
    limits: &HttpLimits,
) -> Result<Option<Request>, Reject>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    if buf.is_empty() {
        let idle_deadline = Instant::now() + limits.idle_timeout;
        match fill(s, buf, idle_deadline).await {
            Ok(true) => {}
            Ok(false) | Err(_) => return Ok(None),
        }
    }
    let deadline = Instant::now() + limits.request_timeout;
    let (head_len, mut req, framing) = loop {
        match body::parse_head(buf)? {
            Some(parsed) => break parsed,
            None if buf.len() > MAX_HEAD => {
                return Err(Reject(431, "Request header fields too large"))
            }
            None => {
                if !fill(s, buf, deadline).await? {
                    return Ok(None);
                }
            }
        }
    };
    if buf.len() < head_len + 1
        && req
            .header("expect")
            .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        && framing.expects_body()
    {
        let _ = write(s, b"HTTP/1.1 100 Continue\r\n\r\n".to_vec()).await;
    }
    buf.drain(..head_len);
    loop {
        match body::take_body(&framing, buf)? {
            Some(b) => {
                req.body = b;
                return Ok(Some(req));
            }
            None => {
                if !fill(s, buf, deadline).await? {
                    return Err(Reject(400, "Incomplete request body"));
                }
            }
        }
    }
}

/// Answer an over-limit connection with 503 and close it.
pub async fn refuse<S: AsyncWriteRent>(mut s: S) {
    let resp = Response::error(503, "Too many connections");
    if let Body::Full(b) = &resp.body {
        let _ = write(&mut s, encode(&resp, b, false)).await;
    }
    let _ = s.shutdown().await;
}
