//! `/openapi.json`: the OpenAPI 3.1.1 description of this API (public, no key needed).

use serde_json::{json, Value};

use super::context::Api;
use crate::master::http::message::{Request, Response};

/// Serve the spec.
pub fn handle(api: &Api, req: &Request) -> Response {
    if req.method != "GET" {
        return Response::error(405, "Method not allowed");
    }
    Response::json(200, &spec(&api.base))
}

fn op(summary: &str, ok: &str, schema: Option<&str>, errors: &[(&str, &str)]) -> Value {
    let mut responses = serde_json::Map::new();
    let content = match schema {
        Some(s) if s.starts_with('#') => json!({"application/json": {"schema": {"$ref": s}}}),
        Some(s) => json!({ s: {} }),
        None => json!({}),
    };
    responses.insert(
        ok.to_string(),
        json!({"description": "Success", "content": content}),
    );
    for (code, why) in errors {
        responses.insert(code.to_string(), json!({"description": why}));
    }
    json!({"summary": summary, "security": [{"ApiKeyAuth": []}], "responses": responses})
}

fn with_body(mut o: Value, schema: &str) -> Value {
    o["requestBody"] =
        json!({"required": true, "content": {"application/json": {"schema": {"$ref": schema}}}});
    o
}

/// The spec with `servers[0].url` = the API base.
pub fn spec(base: &str) -> Value {
    let inst = "#/components/schemas/Instance";
    let auth = ("401", "Unauthorized");
    let notfound = ("404", "Not found");
    json!({
        "openapi": "3.1.1",
        "info": {"title": "NodePass API", "description": "API for managing NodePass server and client instances", "version": "v1"},
        "servers": [{"url": base}],
        "security": [{"ApiKeyAuth": []}],
        "paths": {
            "/instances": {
                "get": op("List all instances", "200", Some("#/components/schemas/InstanceList"), &[auth]),
                "post": with_body(op("Create a new instance", "201", Some(inst), &[("400", "Invalid input"), auth, ("409", "Instance ID already exists")]), "#/components/schemas/CreateInstanceRequest"),
            },
            "/instances/{id}": {
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "get": op("Get instance details", "200", Some(inst), &[auth, notfound]),
                "patch": with_body(op("Update instance (alias, action, restart, meta)", "200", Some(inst), &[("400", "Invalid input"), auth, notfound]), "#/components/schemas/UpdateInstanceRequest"),
                "put": with_body(op("Update instance URL", "200", Some(inst), &[("400", "Invalid input"), auth, ("403", "Forbidden"), notfound, ("409", "Instance URL conflict")]), "#/components/schemas/PutInstanceRequest"),
                "delete": op("Delete instance", "204", None, &[auth, ("403", "Forbidden"), notfound]),
            },
            "/events": {"get": op("Subscribe to instance events (SSE)", "200", Some("text/event-stream"), &[auth])},
            "/info": {
                "get": op("Get master information", "200", Some("#/components/schemas/MasterInfo"), &[auth]),
                "post": with_body(op("Update master alias", "200", Some("#/components/schemas/MasterInfo"), &[("400", "Invalid input"), auth]), "#/components/schemas/UpdateMasterAliasRequest"),
            },
            "/tcping": {"get": {
                "summary": "TCP connectivity test", "security": [{"ApiKeyAuth": []}],
                "parameters": [{"name": "target", "in": "query", "required": true, "schema": {"type": "string"}, "description": "host:port or [v6]:port"}],
                "responses": {"200": {"description": "Success", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/TCPingResult"}}}}, "400": {"description": "Target address required"}, "401": {"description": "Unauthorized"}}
            }},
            "/metrics": {"get": op("Prometheus metrics (extension)", "200", Some("text/plain"), &[auth])},
            "/openapi.json": {"get": {"summary": "Get OpenAPI specification", "security": [], "responses": {"200": {"description": "Success"}}}},
            "/docs": {"get": {"summary": "API documentation page", "security": [], "responses": {"200": {"description": "Success"}}}},
        },
        "components": {
            "securitySchemes": {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"}},
            "schemas": schemas(),
        }
    })
}

fn props(names: &[(&str, &str)]) -> Value {
    let mut m = serde_json::Map::new();
    for (n, t) in names {
        m.insert(n.to_string(), json!({"type": t}));
    }
    Value::Object(m)
}

fn schemas() -> Value {
    let mut instance = props(&[
        ("id", "string"),
        ("alias", "string"),
        ("type", "string"),
        ("status", "string"),
        ("url", "string"),
        ("config", "string"),
        ("restart", "boolean"),
        ("mode", "integer"),
        ("ping", "integer"),
        ("pool", "integer"),
        ("tcps", "integer"),
        ("udps", "integer"),
        ("tcprx", "integer"),
        ("tcptx", "integer"),
        ("udprx", "integer"),
        ("udptx", "integer"),
    ]);
    instance["meta"] = json!({"$ref": "#/components/schemas/Meta"});
    let info = props(&[
        ("mid", "string"),
        ("alias", "string"),
        ("os", "string"),
        ("arch", "string"),
        ("cpu", "integer"),
        ("mem_total", "integer"),
        ("mem_used", "integer"),
        ("swap_total", "integer"),
        ("swap_used", "integer"),
        ("netrx", "integer"),
        ("nettx", "integer"),
        ("diskr", "integer"),
        ("diskw", "integer"),
        ("sysup", "integer"),
        ("ver", "string"),
        ("name", "string"),
        ("uptime", "integer"),
        ("log", "string"),
        ("tls", "string"),
        ("crt", "string"),
        ("key", "string"),
    ]);
    json!({
        "Instance": {"type": "object", "properties": instance},
        "InstanceList": {"type": "array", "items": {"$ref": "#/components/schemas/Instance"}},
        "Meta": {"type": "object", "properties": {"peer": {"$ref": "#/components/schemas/Peer"}, "tags": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "Peer": {"type": "object", "properties": props(&[("sid", "string"), ("type", "string"), ("alias", "string")])},
        "CreateInstanceRequest": {"type": "object", "required": ["url"], "properties": props(&[("url", "string"), ("alias", "string")])},
        "UpdateInstanceRequest": {"type": "object", "properties": {
            "alias": {"type": "string"}, "action": {"type": "string", "enum": ["start", "stop", "restart", "reset"]},
            "restart": {"type": "boolean"}, "meta": {"$ref": "#/components/schemas/Meta"}}},
        "PutInstanceRequest": {"type": "object", "required": ["url"], "properties": props(&[("url", "string")])},
        "UpdateMasterAliasRequest": {"type": "object", "required": ["alias"], "properties": props(&[("alias", "string")])},
        "MasterInfo": {"type": "object", "properties": info},
        "TCPingResult": {"type": "object", "properties": {"target": {"type": "string"}, "connected": {"type": "boolean"}, "latency": {"type": "integer"}, "error": {"type": ["string", "null"]}}},
    })
}
