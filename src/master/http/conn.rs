//! One HTTP/1.1 connection: read requests (keep-alive, `Expect: 100-continue`, a deadline
//! per request and per idle gap), hand each to the [`Handler`], write the answer, or turn
//! the connection into an event stream.

use std::rc::Rc;
use std::time::Instant;

use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};

use super::body;
use super::limits::{HttpLimits, MAX_HEAD};
use super::message::{encode, write, Body, Handler, Reject, Request, Response};
use super::sse;
use crate::crowd::Ticket;

/// Serve one connection until it closes, errs, times out or becomes an event stream.
/// `silent` is its place among connections without a request yet, left at the first one.
pub async fn serve<S, H>(mut stream: S, handler: Rc<H>, limits: HttpLimits, silent: Ticket)
where
    S: AsyncReadRent + AsyncWriteRent + Split + 'static,
    H: Handler,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut silent = Some(silent);
    loop {
        // A new connection gets the short wait for its first request; a caller that sent
        // one keeps the keep-alive wait between requests.
        let idle = match silent {
            Some(_) => limits.first_request_wait,
            None => limits.idle_timeout,
        };
        let req = match read_request(&mut stream, &mut buf, &limits, idle).await {
            Ok(Some(r)) => {
                silent = None;
                r
            }
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
        let resp = handler.handle(req).await;
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
                sse::run(stream, sub).await;
                return;
            }
        }
    }
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
    idle: std::time::Duration,
) -> Result<Option<Request>, Reject>
where
    S: AsyncReadRent + AsyncWriteRent,
{
    if buf.is_empty() {
        let idle_deadline = Instant::now() + idle;
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
