//! `/docs`: a self-contained HTML page that renders the OpenAPI spec without any CDN.

use super::context::Api;
use crate::master::http::message::{Request, Response};

const PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>NodePass API</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
h1{margin-bottom:.2em}.base{color:#666}
.op{border:1px solid #ddd;border-radius:6px;margin:.6em 0;padding:.5em .8em}
.m{display:inline-block;min-width:4.5em;font-weight:bold;text-transform:uppercase}
.get{color:#0a7}.post{color:#07c}.put{color:#c70}.patch{color:#a5c}.delete{color:#c33}
code{background:#f4f4f4;padding:0 .3em}small{color:#666}
details pre{background:#f8f8f8;padding:.6em;overflow:auto}
</style></head><body>
<h1>NodePass API</h1><div class="base">Base URL: <code id="base"></code> · send <code>X-API-Key</code> on protected routes</div>
<div id="ops"></div>
<details><summary>Schemas</summary><pre id="schemas"></pre></details>
<script>
const spec = __SPEC__;
document.getElementById('base').textContent = spec.servers[0].url;
const ops = document.getElementById('ops');
for (const [path, item] of Object.entries(spec.paths)) {
  for (const [method, op] of Object.entries(item)) {
    if (method === 'parameters') continue;
    const div = document.createElement('div'); div.className = 'op';
    const codes = Object.entries(op.responses || {}).map(([c, r]) => c + ' ' + (r.description || '')).join(' · ');
    const m = document.createElement('span'); m.className = 'm ' + method; m.textContent = method;
    const p = document.createElement('code'); p.textContent = path;
    const s = document.createElement('div'); s.textContent = op.summary || '';
    const r = document.createElement('small'); r.textContent = codes;
    div.append(m, p, s, r); ops.append(div);
  }
}
document.getElementById('schemas').textContent = JSON.stringify(spec.components.schemas, null, 2);
</script></body></html>
"#;

/// Serve the page with the spec inlined.
pub fn handle(api: &Api, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::error(405, "Method not allowed");
    }
    // `</` inside the inlined JSON must not close the script element.
    let spec = super::openapi::spec(&api.base)
        .to_string()
        .replace("</", "<\\/");
    Response::typed(
        200,
        "text/html; charset=utf-8",
        PAGE.replace("__SPEC__", &spec).into_bytes(),
    )
}
