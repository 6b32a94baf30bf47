//! The OpenAPI document: it covers exactly the routes the server serves, its
//! references resolve, real responses match the documented schemas, and the
//! docs page works without the internet.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::files::{file_part, multipart, multipart_type};
use crate::helpers::*;

async fn document(app: &TestApp) -> Value {
    // Served without a key, like /health.
    let res = reqwest::get(app.url("/api/v1/openapi.json")).await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(*method).is_some() {
                operations.insert((method.to_string(), path.clone()));
            }
        }
    }
    operations
}

#[actix_web::test]
async fn every_served_route_is_documented_and_only_those() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");

    let served: BTreeSet<(String, String)> = claude_code_api::api::routes::served_routes()
        .into_iter()
        .map(|(method, path)| (method.to_owned(), path))
        .collect();
    let documented = documented_operations(&doc);
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes served without documentation: {undocumented:?}"
    );
    let phantom: Vec<_> = documented.difference(&served).collect();
    assert!(
        phantom.is_empty(),
        "documented operations no route serves: {phantom:?}"
    );
    assert!(
        served.len() >= 45,
        "the route table looks short: {served:?}"
    );

    for (method, path) in &documented {
        let operation = &doc["paths"][path][method];
        let described = ["summary", "description"]
            .iter()
            .any(|k| operation[*k].as_str().is_some_and(|s| !s.is_empty()));
        assert!(described, "{method} {path} has no summary");
        let responses = operation["responses"].as_object().unwrap();
        assert!(
            responses
                .keys()
                .any(|s| s.starts_with('2') || s.starts_with('3')),
            "{method} {path} documents no success"
        );
        // Every `{param}` of the path is a declared path parameter.
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| p["name"].as_str())
            .collect();
        let in_template: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|s| s.split('}').next())
            .collect();
        assert_eq!(declared, in_template, "{method} {path} path parameters");
        // A JSON body can be malformed or too large.
        if operation
            .pointer("/requestBody/content/application~1json")
            .is_some()
        {
            // (MCP reports invalid messages inside its JSON-RPC replies.)
            let statuses: &[&str] = if path == "/mcp" {
                &["400", "413"]
            } else {
                &["400", "413", "422"]
            };
            for status in statuses {
                assert!(
                    responses.contains_key(*status),
                    "{method} {path} lacks its {status}"
                );
            }
        }
        // Authenticated routes say what a missing key gets.
        if operation["security"] != json!([{}]) {
            assert!(
                responses.contains_key("401"),
                "{method} {path} lacks its 401"
            );
        }
    }
}

/// Every `$ref` points at something in the document.
#[actix_web::test]
async fn references_resolve_and_problem_types_are_listed() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 50, "suspiciously few references");
    for reference in refs {
        let pointer = reference.trim_start_matches('#');
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    let kinds = doc
        .pointer("/components/schemas/Problem/properties/type/enum")
        .and_then(Value::as_array)
        .expect("problem types are enumerated");
    for kind in claude_code_api::error::PROBLEM_KINDS {
        let uri = format!("urn:claude-code-api:problem:{kind}");
        assert!(kinds.contains(&Value::from(uri.clone())), "{uri} missing");
    }
    assert!(doc.pointer("/components/securitySchemes/api_key").is_some());
    assert!(doc.pointer("/components/securitySchemes/bearer").is_some());
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// The schema of one documented response, with its `$ref`s resolvable
/// (the whole document rides along as the root) and, so that an
/// undocumented field fails too, every object schema closed.
fn response_validator(doc: &Value, method: &str, path: &str, status: u16) -> jsonschema::Validator {
    let mut response = doc["paths"][path][method]["responses"][status.to_string()].clone();
    if let Some(reference) = response["$ref"].as_str() {
        response = doc
            .pointer(reference.trim_start_matches('#'))
            .unwrap()
            .clone();
    }
    let content = response["content"].as_object().unwrap_or_else(|| {
        panic!("{method} {path} {status} is not documented with a body: {response}")
    });
    let schema = content
        .get("application/json")
        .or_else(|| content.get("application/problem+json"))
        .map(|c| c["schema"].clone())
        .unwrap_or_else(|| panic!("{method} {path} {status} has no JSON body"));
    let mut root = doc.clone();
    let schemas = doc["components"]["schemas"].clone();
    close_objects(&mut root["components"]["schemas"], &schemas);
    let mut target = schema;
    close_objects(&mut target, &schemas);
    root["$defs"] = json!({ "response": target });
    root["$ref"] = json!("#/$defs/response");
    jsonschema::validator_for(&root).expect("the schema compiles")
}

/// Adds `unevaluatedProperties: false` to object schemas; for an `allOf`
/// the whole is closed, not its parts (each part only knows its own fields).
fn close_objects(value: &mut Value, schemas: &Value) {
    close(value, false, schemas)
}

fn close(value: &mut Value, is_part: bool, schemas: &Value) {
    match value {
        Value::Object(map) => {
            let has_parts = map.contains_key("allOf");
            let is_object = map.contains_key("properties") || has_parts;
            if is_object && !is_part && !map.contains_key("additionalProperties") {
                map.insert("unevaluatedProperties".into(), json!(false));
            }
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("allOf", Value::Array(parts)) => {
                        for part in parts {
                            // A referenced part is inlined: the component
                            // itself is closed for its own uses.
                            if let Some(name) = part["$ref"]
                                .as_str()
                                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                            {
                                *part = schemas[name].clone();
                            }
                            close(part, true, schemas);
                        }
                    }
                    (_, child) => close(child, false, schemas),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| close(v, false, schemas)),
        _ => {}
    }
}

/// Sends `request`, asserts `status`, and checks the body against the
/// documented schema of `method path` for that status.
async fn conforms(
    doc: &Value,
    method: &str,
    path: &str,
    status: u16,
    request: reqwest::RequestBuilder,
) -> Value {
    let res = request.send().await.unwrap();
    assert_eq!(res.status().as_u16(), status, "{method} {path}");
    let body: Value = res.json().await.unwrap();
    let validator = response_validator(doc, method, path, status);
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:?}\n{body}"
    );
    body
}

#[actix_web::test]
async fn real_responses_match_their_documented_schemas() {
    let app = TestApp::spawn().await;
    let doc = document(&app).await;
    let d = &doc;
    let v1 = |p: &str| format!("/api/v1{p}");

    conforms(
        d,
        "get",
        "/api/v1/health",
        200,
        app.client.get(app.url("/api/v1/health")),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/sessions",
        201,
        app.post(
            &v1("/sessions"),
            ALICE,
            json!({"name": "doc", "max_turns": 3}),
        ),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/sessions",
        200,
        app.get(&v1("/sessions"), ALICE),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/sessions/{name}",
        200,
        app.get(&v1("/sessions/doc"), ALICE),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/sessions/{name}/chat",
        200,
        app.post(
            &v1("/sessions/doc/chat"),
            ALICE,
            json!({"message": "hello"}),
        ),
    )
    .await;
    let structured = conforms(
        d,
        "post",
        "/api/v1/sessions/{name}/chat",
        200,
        app.post(
            &v1("/sessions/doc/chat"),
            ALICE,
            json!({
                "message": r#"[[structured]]{"n": 1}[[/structured]]"#,
                "output_format": {"type": "json_schema", "schema": {"type": "object"}},
            }),
        ),
    )
    .await;
    assert_eq!(structured["data"]["structured_output"], json!({"n": 1}));
    conforms(
        d,
        "get",
        "/api/v1/sessions/{name}/history",
        200,
        app.get(&v1("/sessions/doc/history"), ALICE),
    )
    .await;
    let job = conforms(
        d,
        "post",
        "/api/v1/sessions/{name}/jobs",
        202,
        app.post(
            &v1("/sessions/doc/jobs"),
            ALICE,
            json!({"message": "later"}),
        ),
    )
    .await;
    let id = job["data"]["id"].as_str().unwrap().to_owned();
    let done = app.wait_job(ALICE, "doc", &id, 60).await;
    assert_eq!(done["status"], "done", "{done}");
    conforms(
        d,
        "get",
        "/api/v1/sessions/{name}/jobs/{id}",
        200,
        app.get(&v1(&format!("/sessions/doc/jobs/{id}")), ALICE),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/sessions/{name}/jobs",
        200,
        app.get(&v1("/sessions/doc/jobs"), ALICE),
    )
    .await;
    let form = multipart(&[file_part("a.py", b"x = 1\n")]);
    conforms(
        d,
        "post",
        "/api/v1/sessions/{name}/files",
        201,
        app.client
            .post(app.url(&v1("/sessions/doc/files?path=src")))
            .header("X-API-Key", ALICE)
            .header("Content-Type", multipart_type())
            .body(form),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/sessions/{name}/files",
        200,
        app.get(&v1("/sessions/doc/files?recursive=true"), ALICE),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/sessions/{name}/approvals",
        200,
        app.get(&v1("/sessions/doc/approvals"), ALICE),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/usage",
        200,
        app.get(&v1("/usage"), ALICE),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/tokens/count",
        200,
        app.post(&v1("/tokens/count"), ALICE, json!({"text": "two words"})),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/audit",
        200,
        app.get(&v1("/audit"), ALICE),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/templates",
        200,
        app.get(&v1("/templates"), ALICE),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/templates/reload",
        200,
        app.post(&v1("/templates/reload"), ADMIN, json!({})),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/admin/tenants",
        200,
        app.get(&v1("/admin/tenants"), ADMIN),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/admin/keys",
        201,
        app.post(
            &v1("/admin/keys"),
            ADMIN,
            json!({"tenant": "alice", "label": "ci"}),
        ),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/admin/keys",
        200,
        app.get(&v1("/admin/keys"), ADMIN),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/webhooks/secret",
        200,
        app.get(&v1("/webhooks/secret"), ALICE),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/webhooks/secret/rotate",
        200,
        app.post(&v1("/webhooks/secret/rotate"), ALICE, json!({})),
    )
    .await;
    conforms(d, "get", "/v1/models", 200, app.get("/v1/models", ALICE)).await;
    conforms(
        d,
        "post",
        "/v1/chat/completions",
        200,
        app.post(
            "/v1/chat/completions",
            ALICE,
            json!({"model": "claude-code", "user": "doc", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="}}]},
            ]}),
        ),
    )
    .await;

    // Problems, documented per route and shared.
    conforms(
        d,
        "get",
        "/api/v1/sessions/{name}",
        404,
        app.get(&v1("/sessions/nope"), ALICE),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/sessions",
        422,
        app.post(&v1("/sessions"), ALICE, json!({"name": ".hidden"})),
    )
    .await;
    conforms(
        d,
        "post",
        "/api/v1/sessions/{name}/interrupt",
        409,
        app.post(&v1("/sessions/doc/interrupt"), ALICE, json!({})),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/admin/tenants",
        403,
        app.get(&v1("/admin/tenants"), ALICE),
    )
    .await;
    conforms(
        d,
        "get",
        "/api/v1/sessions",
        401,
        app.get(&v1("/sessions"), "not-a-key"),
    )
    .await;
}

#[actix_web::test]
async fn the_docs_page_is_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(res.status(), 308);
    assert_eq!(res.headers()["location"], "/docs/");

    let res = client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = res.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    // Everything the page loads is local: no script or style from elsewhere.
    for attr in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
        assert!(!page.contains(attr), "the page loads {attr}…");
    }

    let init = client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");

    let res = client
        .get(app.url("/docs/swagger-ui-bundle.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.unwrap().len() > 100_000, "the bundled UI");

    let res = client
        .get(app.url("/docs/no-such-file.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}
