//! `/tcping?target=host:port`: one timed TCP connect, at most 10 at once.
//!
//! Names are resolved on a helper thread so the runtime never blocks on DNS.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use serde_json::json;

use super::context::Api;
use crate::master::http::message::{Request, Response};
use crate::master::instances::off_thread::off_thread;

/// Dials allowed at once.
pub const MAX_CONCURRENT: usize = 10;
/// How long an extra request waits for a slot.
const SLOT_WAIT: Duration = Duration::from_secs(1);

/// GET only; 400 without a target; always 200 with the outcome otherwise.
pub async fn handle(api: &Api, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::error(405, "Method not allowed");
    }
    let target = crate::config::parse_query(&req.query)
        .into_iter()
        .find(|(k, _)| k == "target")
        .map(|(_, v)| v)
        .unwrap_or_default();
    if target.is_empty() {
        return Response::error(400, "Target address required");
    }
    let outcome = ping(api, &target).await;
    let (connected, latency, error) = match outcome {
        Ok(ms) => (true, ms, None),
        Err(e) => (false, 0, Some(e)),
    };
    Response::json(
        200,
        &json!({"target": target, "connected": connected, "latency": latency, "error": error}),
    )
}

async fn ping(api: &Api, target: &str) -> Result<u64, String> {
    let waited = Instant::now();
    while api.tcping_busy.get() >= MAX_CONCURRENT {
        if waited.elapsed() >= SLOT_WAIT {
            return Err("too many requests".to_string());
        }
        monoio::time::sleep(Duration::from_millis(10)).await;
    }
    api.tcping_busy.set(api.tcping_busy.get() + 1);
    let res = dial(target, api.m.report_interval()).await;
    api.tcping_busy.set(api.tcping_busy.get() - 1);
    res
}

async fn dial(target: &str, timeout: Duration) -> Result<u64, String> {
    let start = Instant::now();
    let addr = resolve(target, timeout).await?;
    let left = timeout.saturating_sub(start.elapsed());
    match monoio::time::timeout(left, monoio::net::TcpStream::connect_addr(addr)).await {
        Err(_) => Err(format!("dial tcp {target}: i/o timeout")),
        Ok(Err(e)) => Err(format!("dial tcp {addr}: {e}")),
        Ok(Ok(_)) => Ok(start.elapsed().as_millis() as u64),
    }
}

async fn resolve(target: &str, timeout: Duration) -> Result<SocketAddr, String> {
    if let Ok(addr) = target.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if !target.contains(':') {
        return Err(format!("address {target}: missing port in address"));
    }
    let owned = target.to_string();
    let lookup = off_thread(move || owned.to_socket_addrs().map(|mut it| it.next()));
    match monoio::time::timeout(timeout, lookup).await {
        Err(_) => Err(format!("lookup {target}: i/o timeout")),
        Ok(None) => Err(format!("lookup {target}: resolver failed")),
        Ok(Some(Err(e))) => Err(format!("lookup {target}: {e}")),
        Ok(Some(Ok(None))) => Err(format!("lookup {target}: no such host")),
        Ok(Some(Ok(Some(addr)))) => Ok(addr),
    }
}
