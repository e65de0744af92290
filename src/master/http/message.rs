//! HTTP messages: the parsed [`Request`], the [`Response`] a [`Handler`] answers and its
//! bytes on the wire (CORS headers on every response, Go's JSON error shape).

use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll};

use monoio::io::{AsyncWriteRent, AsyncWriteRentExt};

/// The application behind the server: it answers every request that was read in full.
pub trait Handler: 'static {
    /// Answer one request.
    fn handle(&self, req: Request) -> impl Future<Output = Response>;
}

/// A stream of server-sent-event frames, already formatted, fed by the application.
pub trait EventSource {
    /// The frames queued since the last call; `Ready(None)` once the stream must end.
    fn poll_frames(&self, cx: &mut Context<'_>) -> Poll<Option<Vec<Rc<str>>>>;
    /// The client went away (or a write failed): nothing more will be read.
    fn close(&self);
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
    /// An event stream (`text/event-stream`) fed by this source until it ends.
    Events(Rc<dyn EventSource>),
}

/// A response; CORS headers are added to every one when written.
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Content-Type, if any.
    pub content_type: Option<&'static str>,
    /// The body.
    pub body: Body,
    /// `Location` of a redirect.
    pub location: Option<String>,
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
            location: None,
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
            location: None,
        }
    }

    /// `302 Found` to `to` (a path on this server).
    pub fn redirect(to: String) -> Self {
        Response {
            location: Some(to),
            ..Self::empty(302)
        }
    }

    /// A body of the given type.
    pub fn typed(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        Response {
            status,
            content_type: Some(content_type),
            body: Body::Full(body),
            location: None,
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
        302 => "Found",
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
    if let Some(to) = &resp.location {
        head.push_str(&format!("Location: {to}\r\n"));
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

/// Write all of `bytes` and flush.
pub async fn write<S: AsyncWriteRent>(s: &mut S, bytes: Vec<u8>) -> std::io::Result<()> {
    let (res, _) = s.write_all(bytes).await;
    res?;
    s.flush().await
}
