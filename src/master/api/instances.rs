//! Handlers for `/instances` and `/instances/{id}` (GET, PUT, DELETE; PATCH is in `patch.rs`).

use std::rc::Rc;

use serde_json::Value;

use super::context::Api;
use super::patch;
use crate::master::http::message::{Request, Response};
use crate::master::instances::core::{random_hex, Master};
use crate::master::instances::model::{Instance, MAX_VALUE_LEN};
use crate::master::instances::supervisor;
use crate::master::instances::urls::{self, UrlError};

/// `/instances`: GET lists, POST creates.
pub fn instances(api: &Api, req: &Request) -> Response {
    let m = &api.m;
    match req.method.as_str() {
        "GET" => {
            let list: Vec<Value> = m
                .instances
                .borrow()
                .iter()
                .filter(|i| !i.run.deleted)
                .map(Instance::to_json)
                .collect();
            Response::json(200, &Value::Array(list))
        }
        "POST" => create(api, req),
        _ => Response::error(405, "Method not allowed"),
    }
}

/// The `url` (and optional `alias`) of a POST/PUT body, checked as Go does.
pub(crate) struct NewUrl {
    pub(crate) kind: &'static str,
    pub(crate) enhanced: String,
    pub(crate) alias: String,
}

fn read_url_body(api: &Api, req: &Request) -> Result<NewUrl, Response> {
    let m = &api.m;
    let env = api.validate_urls.then(|| m.env.clone());
    decode_url_body(&req.body, &m.defaults, env)
}

/// The pure part of a POST/PUT body check (the fuzz target `master_json` calls it too):
/// JSON, `url`, `alias`, scheme, the enhanced URL and, given an `env`, its full parse.
pub(crate) fn decode_url_body(
    body: &[u8],
    defaults: &urls::UrlDefaults,
    validate: Option<crate::config::Env>,
) -> Result<NewUrl, Response> {
    let bad = || Response::error(400, "Invalid request body");
    let v: Value = serde_json::from_slice(body).map_err(|_| bad())?;
    let url = match v.get("url") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(bad()),
    };
    let alias = match v.get("alias") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad()),
    };
    if alias.len() > MAX_VALUE_LEN {
        return Err(Response::error(
            400,
            &format!("Instance alias exceeds maximum length {MAX_VALUE_LEN}"),
        ));
    }
    let kind = urls::instance_type(&url).map_err(|e| match e {
        UrlError::Format => Response::error(400, "Invalid URL format"),
        UrlError::Scheme => Response::error(400, "Invalid URL scheme"),
    })?;
    let enhanced = urls::enhance(&url, kind, defaults);
    if let Some(env) = validate {
        if let Err(e) = crate::config::parse_url(&enhanced, env) {
            return Err(Response::error(400, &format!("Invalid URL format: {e}")));
        }
    }
    Ok(NewUrl {
        kind,
        enhanced,
        alias,
    })
}

fn create(api: &Api, req: &Request) -> Response {
    let m = &api.m;
    let new = match read_url_body(api, req) {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    let mut id = random_hex(4);
    while m.json_of(&id).is_some() {
        id = random_hex(4);
    }
    let config = urls::config_url(&new.enhanced, new.kind, &m.defaults);
    let mut inst = Instance::new(id.clone(), new.kind, new.enhanced, config);
    inst.alias = new.alias;
    m.instances.borrow_mut().push(inst);
    m.mark_dirty();
    m.emit("create", &id);
    supervisor::start(m, &id);
    let body = m.json_of(&id).unwrap_or(Value::Null);
    Response::json(201, &body)
}

/// `/instances/{id}`.
pub async fn instance(api: &Api, req: &Request, id: &str) -> Response {
    let m = &api.m;
    if id.is_empty() || id == "/" {
        return Response::error(400, "Instance ID is required");
    }
    let Some(current) = m
        .with(id, |i| (!i.run.deleted).then(|| i.to_json()))
        .flatten()
    else {
        return Response::error(404, "Instance not found");
    };
    let is_key = id == crate::master::instances::model::KEY_ID;
    match req.method.as_str() {
        "GET" => Response::json(200, &current),
        "PATCH" => patch::handle(m, req, id).await,
        "PUT" if is_key => Response::error(403, "Forbidden: API Key"),
        "DELETE" if is_key => Response::error(403, "Forbidden: API Key"),
        "PUT" => put(api, req, id).await,
        "DELETE" => delete(m, id).await,
        _ => Response::error(405, "Method not allowed"),
    }
}

async fn put(api: &Api, req: &Request, id: &str) -> Response {
    let m = &api.m;
    let new = match read_url_body(api, req) {
        Ok(n) => n,
        Err(resp) => return resp,
    };
    if m.with(id, |i| i.url == new.enhanced) == Some(true) {
        return Response::error(409, "Instance URL conflict");
    }
    supervisor::stop(m, id).await;
    let config = urls::config_url(&new.enhanced, new.kind, &m.defaults);
    m.with(id, |i| {
        i.url = new.enhanced.clone();
        i.kind = new.kind.to_string();
        i.config = config;
    });
    let shown = crate::config::masked_url(&new.enhanced);
    log::info!("Instance URL updated: {shown} [{id}]");
    m.mark_dirty();
    monoio::time::sleep(supervisor::RESTART_PAUSE).await;
    supervisor::start(m, id);
    match m.json_of(id) {
        Some(v) => Response::json(200, &v),
        None => Response::error(404, "Instance not found"),
    }
}

async fn delete(m: &Rc<Master>, id: &str) -> Response {
    m.with(id, |i| i.run.deleted = true);
    supervisor::stop(m, id).await;
    let gone = m.json_of(id);
    m.instances.borrow_mut().retain(|i| i.id != id);
    m.mark_dirty();
    if let Some(v) = gone {
        m.hub.publish("delete", Some(v), "");
    }
    log::info!("Instance deleted [{id}]");
    Response::empty(204)
}
