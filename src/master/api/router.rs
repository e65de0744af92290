//! Routing under `<prefix>/v1`: CORS preflight, API-key check, dispatch, 404/405; the
//! server's root `/` redirects a browser to the docs page.

use std::future::Future;

use super::context::Api;
use super::{docs_page, events, info, instances, metrics, openapi, tcping};
use crate::master::http::message::{Handler, Request, Response};
use crate::master::instances::core::Master;
use crate::proto::auth::same_secret;

impl Handler for Api {
    fn handle(&self, req: Request) -> impl Future<Output = Response> {
        handle(self, req)
    }
}

/// Answer one request.
pub async fn handle(api: &Api, req: Request) -> Response {
    let m = &api.m;
    if req.method == "OPTIONS" {
        return Response::empty(200);
    }
    if req.path == "/" && (req.method == "GET" || req.method == "HEAD") {
        return Response::redirect(format!("{}/docs", api.base));
    }
    let Some(rest) = req.path.strip_prefix(api.base.as_str()) else {
        return Response::error(404, "Not found");
    };
    let rest = rest.to_string();
    match rest.as_str() {
        "/openapi.json" => return openapi::handle(api, &req),
        "/docs" => return docs_page::handle(api, &req),
        _ => {}
    }
    if !is_known(&rest) {
        return Response::error(404, "Not found");
    }
    if let Some(denied) = check_key(m, &req) {
        return denied;
    }
    match rest.as_str() {
        "/instances" => instances::instances(api, &req),
        "/events" => events::handle(m, &req),
        "/info" => info::handle(api, &req).await,
        "/tcping" => tcping::handle(api, &req).await,
        "/metrics" => metrics::handle(api, &req),
        _ => match rest.strip_prefix("/instances/") {
            Some(id) => instances::instance(api, &req, id).await,
            None => Response::error(404, "Not found"),
        },
    }
}

fn is_known(rest: &str) -> bool {
    matches!(
        rest,
        "/instances" | "/events" | "/info" | "/tcping" | "/metrics"
    ) || rest.starts_with("/instances/")
}

/// 401 unless `X-API-Key` matches (auth is off while the key is empty).
fn check_key(m: &Master, req: &Request) -> Option<Response> {
    let key = m.api_key();
    if key.is_empty() {
        return None;
    }
    match req.header("x-api-key") {
        None | Some("") => Some(Response::error(401, "Unauthorized: API key required")),
        Some(given) if !same_secret(given.as_bytes(), key.as_bytes()) => {
            Some(Response::error(401, "Unauthorized: Invalid API key"))
        }
        Some(_) => None,
    }
}
