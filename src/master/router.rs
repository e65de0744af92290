//! Routing under `<prefix>/v1`: CORS preflight, API-key check, dispatch, 404/405.

use std::rc::Rc;

use super::core::{constant_time_eq, Master};
use super::http::{Request, Response};
use super::{api, docs_page, info, metrics, openapi, tcping};

/// Answer one request.
pub async fn handle(m: &Rc<Master>, req: Request) -> Response {
    if req.method == "OPTIONS" {
        return Response::empty(200);
    }
    let Some(rest) = req.path.strip_prefix(m.base.as_str()) else {
        return Response::error(404, "Not found");
    };
    let rest = rest.to_string();
    match rest.as_str() {
        "/openapi.json" => return openapi::handle(m, &req),
        "/docs" => return docs_page::handle(m, &req),
        _ => {}
    }
    if !is_known(&rest) {
        return Response::error(404, "Not found");
    }
    if let Some(denied) = check_key(m, &req) {
        return denied;
    }
    match rest.as_str() {
        "/instances" => api::instances(m, &req),
        "/events" => api::events(m, &req),
        "/info" => info::handle(m, &req).await,
        "/tcping" => tcping::handle(m, &req).await,
        "/metrics" => metrics::handle(m, &req),
        _ => match rest.strip_prefix("/instances/") {
            Some(id) => api::instance(m, &req, id).await,
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
        Some(given) if !constant_time_eq(given.as_bytes(), key.as_bytes()) => {
            Some(Response::error(401, "Unauthorized: Invalid API key"))
        }
        Some(_) => None,
    }
}
