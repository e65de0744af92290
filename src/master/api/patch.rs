//! PATCH `/instances/{id}`: alias, then action, then restart policy, then meta (Go's order).
//!
//! A body that does not decode (bad JSON or a wrong type) changes nothing and still gets
//! 200; JSON `null` counts as "not given". A field failing a length check answers 400,
//! keeping the changes already applied before it.

use std::rc::Rc;

use serde_json::{Map, Value};

use crate::master::http::message::{Request, Response};
use crate::master::instances::core::{random_hex, Master};
use crate::master::instances::model::{Peer, KEY_ID, MAX_VALUE_LEN};
use crate::master::instances::supervisor;

/// The decoded body; `None` fields were absent or `null`.
#[derive(Default)]
pub(crate) struct Patch {
    pub(crate) alias: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) restart: Option<bool>,
    pub(crate) peer: Option<Peer>,
    pub(crate) tags: Option<Vec<(String, String)>>,
    pub(crate) has_meta: bool,
}

fn opt_str(v: Option<&Value>) -> Result<Option<String>, ()> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(()),
    }
}

pub(crate) fn decode(body: &[u8]) -> Result<Patch, ()> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ())?;
    let Value::Object(obj) = v else {
        return Err(());
    };
    let mut p = Patch {
        alias: opt_str(obj.get("alias"))?,
        action: opt_str(obj.get("action"))?,
        ..Patch::default()
    };
    p.restart = match obj.get("restart") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(()),
    };
    let meta = match obj.get("meta") {
        None | Some(Value::Null) => return Ok(p),
        Some(Value::Object(meta)) => meta,
        Some(_) => return Err(()),
    };
    p.has_meta = true;
    p.peer = match meta.get("peer") {
        None | Some(Value::Null) => None,
        Some(Value::Object(peer)) => Some(Peer {
            sid: opt_str(peer.get("sid"))?.unwrap_or_default(),
            kind: opt_str(peer.get("type"))?.unwrap_or_default(),
            alias: opt_str(peer.get("alias"))?.unwrap_or_default(),
        }),
        Some(_) => return Err(()),
    };
    p.tags = match meta.get("tags") {
        None | Some(Value::Null) => None,
        Some(Value::Object(tags)) => Some(decode_tags(tags)?),
        Some(_) => return Err(()),
    };
    Ok(p)
}

fn decode_tags(tags: &Map<String, Value>) -> Result<Vec<(String, String)>, ()> {
    tags.iter()
        .map(|(k, v)| Ok((k.clone(), opt_str(Some(v))?.unwrap_or_default())))
        .collect()
}

fn too_long(what: &str) -> Response {
    Response::error(
        400,
        &format!("{what} exceeds maximum length {MAX_VALUE_LEN}"),
    )
}

fn current(m: &Master, id: &str) -> Response {
    match m.json_of(id) {
        Some(v) => Response::json(200, &v),
        None => Response::error(404, "Instance not found"),
    }
}

/// Apply a PATCH body to instance `id` (which exists).
pub async fn handle(m: &Rc<Master>, req: &Request, id: &str) -> Response {
    let Ok(p) = decode(&req.body) else {
        return current(m, id);
    };
    if id == KEY_ID {
        if p.action.as_deref() == Some("restart") {
            rotate_key(m);
        }
        return current(m, id);
    }
    if let Some(alias) = p.alias.filter(|a| !a.is_empty()) {
        if alias.len() > MAX_VALUE_LEN {
            return too_long("Instance alias");
        }
        if m.with(id, |i| {
            std::mem::replace(&mut i.alias, alias.clone()) != alias
        }) == Some(true)
        {
            log::info!("Alias updated: {alias} [{id}]");
            changed(m, id);
        }
    }
    if let Some(action) = p.action.filter(|a| !a.is_empty()) {
        if let Err(resp) = run_action(m, id, &action).await {
            return resp;
        }
    }
    if let Some(restart) = p.restart {
        if m.with(id, |i| {
            std::mem::replace(&mut i.restart, restart) != restart
        }) == Some(true)
        {
            log::info!("Restart policy updated: {restart} [{id}]");
            changed(m, id);
        }
    }
    if p.has_meta {
        if let Some(peer) = p.peer {
            for (what, v) in [
                ("Meta peer.sid", &peer.sid),
                ("Meta peer.type", &peer.kind),
                ("Meta peer.alias", &peer.alias),
            ] {
                if v.len() > MAX_VALUE_LEN {
                    return too_long(what);
                }
            }
            m.with(id, |i| i.peer = peer);
        }
        if let Some(tags) = p.tags {
            for (k, v) in &tags {
                if k.len() > MAX_VALUE_LEN {
                    return too_long("Meta tag key");
                }
                if v.len() > MAX_VALUE_LEN {
                    return too_long("Meta tag value");
                }
            }
            m.with(id, |i| i.tags = tags);
        }
        log::info!("Meta updated [{id}]");
        changed(m, id);
    }
    current(m, id)
}

fn changed(m: &Master, id: &str) {
    m.mark_dirty();
    m.emit("update", id);
}

async fn run_action(m: &Rc<Master>, id: &str, action: &str) -> Result<(), Response> {
    match action {
        "reset" => {
            m.with(id, |i| i.reset_traffic());
            log::info!("Traffic stats reset: 0 [{id}]");
            changed(m, id);
        }
        "start" => supervisor::start(m, id),
        // A stop is awaited so the answer (and the next GET) already shows `stopped`.
        "stop" => supervisor::stop(m, id).await,
        // Awaited too: the answer comes once the new child runs (or shows why it does not).
        "restart" => supervisor::restart(m, id).await,
        other => return Err(Response::error(400, &format!("Invalid action: {other}"))),
    }
    Ok(())
}

/// New API key: `update` event, then `shutdown` to every subscriber (their key is void).
/// The log line masks it (unlike "API Key created", the one way an operator learns the
/// first key).
pub fn rotate_key(m: &Rc<Master>) {
    let key = random_hex(16);
    m.with(KEY_ID, |i| i.url = key.clone());
    // The caller has the key in the answer; a log (journal, dashboard) must not.
    log::info!("API Key regenerated: {}", crate::config::masked_key(&key));
    m.mark_dirty();
    m.emit("update", KEY_ID);
    m.hub.shutdown_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nulls_count_as_absent_and_peer_nulls_become_empty() {
        let p = decode(br#"{"alias":null,"meta":{"peer":{"sid":"s","type":"0","alias":null},"tags":{"a":"b"}}}"#).unwrap();
        assert!(p.alias.is_none());
        assert_eq!(
            p.peer.unwrap(),
            Peer {
                sid: "s".into(),
                kind: "0".into(),
                alias: String::new()
            }
        );
        assert_eq!(p.tags.unwrap(), vec![("a".to_string(), "b".to_string())]);
    }

    #[test]
    fn a_wrongly_typed_field_makes_the_whole_body_undecodable() {
        assert!(decode(br#"{"restart":"yes"}"#).is_err());
        assert!(decode(b"not json").is_err());
        assert!(decode(br#"{"action":"stop","restart":true}"#).is_ok());
    }
}
