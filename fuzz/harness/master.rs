//! Targets for the master API: the HTTP/1.1 request head and body parser (Content-Length
//! and chunked) and the JSON bodies of POST/PUT and PATCH `/instances`.

use nodepass::config::Env;
use nodepass::master::fuzzing::{
    parse_head, patch_body, take_body, url_body, Framing, PatchFields, UrlDefaults, MAX_BODY,
    MAX_HEAD,
};
use serde_json::{json, Map, Value};

use super::{take_field, text};

/// Head then body, as a connection reads them: a complete head lies inside the input and
/// under the head limit; a body is never over the body limit, a Content-Length body has
/// exactly that length, and taking it removes at least its bytes from the buffer.
pub fn master_http(data: &[u8]) {
    let Ok(Some((n, req, framing))) = parse_head(data) else {
        return;
    };
    assert!(n <= data.len() && n <= MAX_HEAD);
    assert!(req.header(":version").is_some());
    let mut rest = data[n..].to_vec();
    let before = rest.len();
    if let Ok(Some(body)) = take_body(&framing, &mut rest) {
        assert!(body.len() <= MAX_BODY);
        assert!(before - rest.len() >= body.len());
        if let Framing::Length(k) = framing {
            assert_eq!(body.len(), k);
        }
    }
}

/// Chunked bodies on their own: any bytes decode without panic within the limit; the
/// fuzzed body chunked at fuzzed sizes (with extensions and trailers) decodes back to
/// itself, consuming exactly the encoding, and every proper prefix asks for more bytes.
pub fn master_chunked(data: &[u8]) {
    let mut buf = data.to_vec();
    if let Ok(Some(body)) = take_body(&Framing::Chunked, &mut buf) {
        assert!(body.len() <= MAX_BODY && body.len() <= data.len());
    }
    let (sizes, body) = take_field(data, 8);
    let mut wire = Vec::new();
    let mut pos = 0;
    let mut i = 0;
    while pos < body.len() {
        let n = (usize::from(sizes.get(i).copied().unwrap_or(255)) + 1).min(body.len() - pos);
        let ext = if i % 2 == 1 { ";x=y" } else { "" };
        wire.extend_from_slice(format!("{n:X}{ext}\r\n").as_bytes());
        wire.extend_from_slice(&body[pos..pos + n]);
        wire.extend_from_slice(b"\r\n");
        pos += n;
        i += 1;
    }
    wire.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
    for cut in [0, wire.len() / 2, wire.len() - 1] {
        let mut part = wire[..cut].to_vec();
        let more = take_body(&Framing::Chunked, &mut part);
        assert!(
            matches!(more, Ok(None)),
            "a prefix of {cut} bytes is not incomplete"
        );
    }
    wire.extend_from_slice(b"NEXT");
    let mut buf = wire;
    match take_body(&Framing::Chunked, &mut buf) {
        Ok(Some(got)) => assert_eq!(got, body),
        Ok(None) => panic!("a whole chunked body is incomplete"),
        Err(r) => panic!("a well-formed chunked body is refused: {} {}", r.0, r.1),
    }
    assert_eq!(buf, b"NEXT");
}

/// POST/PUT and PATCH bodies: any bytes are accepted or refused without panic; a refusal
/// is a 400 whose body is JSON; an accepted URL body names a client or server; a PATCH
/// body built from the decoded fields decodes to the same fields.
pub fn master_json(data: &[u8]) {
    let defaults = UrlDefaults {
        log: "debug".into(),
        tls: "1".into(),
        ..UrlDefaults::default()
    };
    for (d, env) in [
        (&UrlDefaults::default(), None),
        (&defaults, Some(Env::default())),
    ] {
        match url_body(data, d, env) {
            Ok((kind, enhanced, _alias)) => {
                assert!(kind == "client" || kind == "server");
                // The scheme stays as written (`Client://` is a client): regressions/
                // master_json/crash-6232…. Go's `url.String()` would lowercase it.
                let scheme = enhanced.split(':').next().unwrap_or("");
                assert!(scheme.eq_ignore_ascii_case(kind), "{enhanced:?}");
            }
            Err((status, body)) => {
                assert_eq!(status, 400);
                assert!(serde_json::from_slice::<Value>(&body).is_ok(), "{body:?}");
            }
        }
    }
    if let Some(p) = patch_body(data) {
        let again = serde_json::to_vec(&patch_json(&p)).unwrap_or_default();
        assert_eq!(patch_body(&again), Some(p));
    }
    let (url, alias) = take_field(data, 255);
    let body = json!({ "url": text(url), "alias": text(alias) });
    let _ = url_body(body.to_string().as_bytes(), &defaults, Some(Env::default()));
}

fn patch_json(p: &PatchFields) -> Value {
    let mut obj = Map::new();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            obj.insert(k.to_string(), v);
        }
    };
    put("alias", p.alias.clone().map(Value::from));
    put("action", p.action.clone().map(Value::from));
    put("restart", p.restart.map(Value::from));
    if p.has_meta {
        let mut meta = Map::new();
        if let Some((sid, kind, alias)) = &p.peer {
            meta.insert(
                "peer".into(),
                json!({ "sid": sid, "type": kind, "alias": alias }),
            );
        }
        if let Some(tags) = &p.tags {
            let t: Map<String, Value> = tags
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                .collect();
            meta.insert("tags".into(), Value::Object(t));
        }
        put("meta", Some(Value::Object(meta)));
    }
    Value::Object(obj)
}
