//! The master's pure parsers, reachable from outside the crate only for the fuzz targets
//! (`fuzz/`) and their replay test (`tests/it/fuzz_regressions.rs`). Not a stable API.

pub use super::http::body::{parse_head, take_body, Framing};
pub use super::http::limits::{MAX_BODY, MAX_HEAD};
pub use super::http::message::{Reject, Request};
pub use super::instances::urls::UrlDefaults;

use super::api::{instances, patch};
use super::http::message::{Body, Response};
use crate::config::Env;

/// A POST/PUT `/instances` body checked as the handler checks it: `Ok((type, enhanced URL,
/// alias))`, or the refusal's status and body bytes. `validate` is the `NP_*`
/// environment when the master also parses the URL in full.
pub fn url_body(
    body: &[u8],
    defaults: &UrlDefaults,
    validate: Option<Env>,
) -> Result<(&'static str, String, String), (u16, Vec<u8>)> {
    match instances::decode_url_body(body, defaults, validate) {
        Ok(n) => Ok((n.kind, n.enhanced, n.alias)),
        Err(resp) => Err(refusal(resp)),
    }
}

fn refusal(resp: Response) -> (u16, Vec<u8>) {
    match resp.body {
        Body::Full(b) => (resp.status, b),
        Body::Events(_) => (resp.status, Vec::new()),
    }
}

/// The fields of a PATCH body that decoded (absent and `null` are `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatchFields {
    /// `alias`.
    pub alias: Option<String>,
    /// `action`.
    pub action: Option<String>,
    /// `restart`.
    pub restart: Option<bool>,
    /// `meta.peer` as (sid, type, alias).
    pub peer: Option<(String, String, String)>,
    /// `meta.tags`.
    pub tags: Option<Vec<(String, String)>>,
    /// `meta` was an object.
    pub has_meta: bool,
}

/// A PATCH body decoded as the handler decodes it; `None` when it changes nothing.
pub fn patch_body(body: &[u8]) -> Option<PatchFields> {
    let p = patch::decode(body).ok()?;
    Some(PatchFields {
        alias: p.alias,
        action: p.action,
        restart: p.restart,
        peer: p.peer.map(|peer| (peer.sid, peer.kind, peer.alias)),
        tags: p.tags,
        has_meta: p.has_meta,
    })
}
