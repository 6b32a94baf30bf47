//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! annotations and the types they return, served at
//! `/api/v1/openapi.json`; and the interactive page at `/docs` (Swagger UI,
//! its files compiled into the binary, so it works offline).

use std::sync::{Arc, OnceLock};

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use super::schema_parts::problem;
use super::{
    admin, audit, chat, control, egress, files, forks, git, health, history, jobs, me, members,
    model_credentials, nodes, openai, pipelines, repos, schedules, secrets, sessions, templates,
    tenant_defaults, trust_rules, usage, webhooks, working_dir,
};
use crate::error::{problem_type, PROBLEM_KINDS};
use claude_code_api_core::domain::attachment;
use claude_code_api_core::domain::event;

/// Where the document is served; the docs page loads it from there.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "claude-code-api",
        description = "A self-hosted, multi-tenant REST + SSE server for the Claude Code CLI. \
            Every `/api/v1` route but `/health` and `/openapi.json` needs an API key \
            (`X-API-Key` or `Authorization: Bearer`), or a bearer token (JWT) of an issuer a \
            trust rule names (`/api/v1/admin/trust-rules`), and sees only its tenant's resources: \
            another tenant's object is a 404. Success bodies are `{data, meta}` (lists add \
            `pagination`); errors are RFC 9457 problem documents \
            (`application/problem+json`). A JSON body must be an object, and no string the \
            server reads from it may hold a NUL character (422); nor may a path or query \
            parameter (400). Prometheus metrics are served on their own \
            listener (`METRICS_ADDR`), not here.",
    ),
    paths(
        health::health,
        health::root_health,
        openapi_json,
        docs_redirect,
        docs_file,
        sessions::create_session,
        sessions::list_sessions,
        sessions::get_session,
        sessions::get_mcp,
        forks::fork_session,
        forks::list_forks,
        tenant_defaults::get_defaults,
        tenant_defaults::set_defaults,
        sessions::delete_session,
        chat::chat,
        chat::chat_stream,
        history::get_history,
        jobs::create_job,
        jobs::list_jobs,
        jobs::get_job,
        jobs::cancel_job,
        pipelines::create_pipeline,
        pipelines::list_pipelines,
        pipelines::get_pipeline,
        pipelines::cancel_pipeline,
        webhooks::list_deliveries,
        webhooks::redeliver,
        webhooks::get_webhook_secret,
        webhooks::rotate_webhook_secret,
        working_dir::set_working_dir,
        git::get_git,
        git::get_diff,
        git::commit,
        git::push,
        git::pull_request,
        repos::create_repo,
        repos::list_repos,
        repos::get_repo,
        repos::update_repo,
        repos::delete_repo,
        schedules::create_schedule,
        schedules::list_schedules,
        schedules::get_schedule,
        schedules::delete_schedule,
        schedules::pause_schedule,
        schedules::resume_schedule,
        schedules::trigger_schedule,
        schedules::list_schedule_runs,
        secrets::put_secret,
        secrets::list_secrets,
        secrets::delete_secret,
        files::upload_file,
        files::list_files,
        files::download_file,
        files::delete_file,
        files::download_archive,
        control::session_events,
        control::interrupt_session,
        control::list_approvals,
        control::decide_approval,
        templates::list_templates,
        templates::reload_templates,
        templates::get_template,
        usage::get_usage,
        usage::count_tokens,
        audit::list_audit,
        admin::list_tenants,
        admin::create_tenant,
        admin::update_tenant,
        model_credentials::get_model_credential,
        model_credentials::set_model_credential,
        model_credentials::delete_model_credential,
        egress::get_egress,
        egress::set_egress,
        admin::list_keys,
        admin::create_key,
        admin::revoke_key,
        trust_rules::create_trust_rule,
        trust_rules::list_trust_rules,
        trust_rules::delete_trust_rule,
        me::me,
        me::list_my_keys,
        me::create_my_key,
        me::revoke_my_key,
        members::list_members,
        members::change_member,
        members::remove_member,
        members::sign_out_member,
        members::create_invitation,
        members::list_invitations,
        members::withdraw_invitation,
        nodes::list_nodes,
        openai::chat_completions,
        openai::list_models,
    ),
    components(schemas(
        crate::error::Problem,
        event::StreamEvent,
        event::TurnStarted,
        event::TextDelta,
        event::AssistantText,
        event::ToolCall,
        event::ToolResult,
        event::PermissionResolved,
        event::TurnProblem,
        event::JobStatus,
        event::GitCommit,
        event::GitPush,
        event::PullRequestOpened,
    )),
    tags(
        (name = "meta", description = "Health, this document and the docs page"),
        (name = "sessions", description = "Named sessions, each with its workspace and CLI process"),
        (name = "chat", description = "Turns: answered whole, or streamed as server-sent events"),
        (name = "jobs", description = "Durable asynchronous turns, reported through signed webhooks"),
        (name = "pipelines", description = "Graphs of jobs: steps after their dependencies, fan-out over a structured result, fan-in, one webhook at the end"),
        (name = "webhooks", description = "Webhook deliveries, their attempts, and the tenant's signing secret"),
        (name = "files", description = "Files in a session's workspace"),
        (name = "schedules", description = "Jobs started by the clock: cron, an interval or once, with their runs"),
        (name = "secrets", description = "A tenant's write-only secrets, used by name where a credential goes"),
        (name = "repos", description = "Git repositories, sessions made from them, their branch, diff, push and pull request"),
        (name = "me", description = "The caller, and a person's own keys"),
        (name = "control", description = "Live events, interrupts and tool approvals"),
        (name = "templates", description = "Agent templates from TEMPLATES_DIR"),
        (name = "usage", description = "Spend, tokens and the audit log"),
        (name = "admin", description = "Tenants, API keys, members and invitations, and trust rules for bearer tokens (admins of their tenant; the owner for every tenant and the server)"),
        (name = "openai", description = "OpenAI-compatible chat completions"),
        (name = "mcp", description = "Model Context Protocol server (streamable HTTP)"),
    ),
)]
struct ApiDoc;

/// The finished document: the generated one plus the security schemes and
/// the responses every authenticated route shares.
pub fn document() -> &'static Value {
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        complete(&mut doc);
        doc
    })
}

/// Responses a route may give whatever it does, by status: `(status,
/// component name, description, when)`.
const SHARED_RESPONSES: &[(&str, &str, &str, Applies)] = &[
    (
        "400",
        "BadRequest",
        "A malformed request: a NUL (`%00`) in the URL, or a body that is not JSON (or lacks \
         `Content-Type: application/json`)",
        Applies::All,
    ),
    (
        "401",
        "Unauthorized",
        "No valid API key (`X-API-Key` or `Authorization: Bearer`), or a bearer token (JWT) \
         refused: `detail` says why (untrusted issuer, expired, wrong audience, no matching \
         trust rule, …)",
        Applies::Authenticated,
    ),
    (
        "413",
        "PayloadTooLarge",
        "The JSON body is larger than 2 MiB",
        Applies::JsonBody,
    ),
    (
        "429",
        "RateLimited",
        "The key's or tenant's request rate is used up; see `Retry-After` and `RateLimit-*`",
        Applies::Authenticated,
    ),
    (
        "500",
        "Internal",
        "An internal error; the cause is in the server's log",
        Applies::All,
    ),
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Applies {
    All,
    /// Routes that need a key.
    Authenticated,
    /// Routes that read a JSON body.
    JsonBody,
}

/// Media types of raw file bodies: a byte string, not JSON.
const BINARY_MEDIA_TYPES: &[&str] = &["application/octet-stream", "application/gzip"];

fn complete(doc: &mut Value) {
    let components = &mut doc["components"];
    for (_, name, description, _) in SHARED_RESPONSES {
        components["responses"][name] = problem(description);
    }
    components["securitySchemes"] = json!({
        "api_key": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, or a JWT of an issuer a trust rule names (GitHub \
                Actions, GitLab CI, an OpenID provider): signed RS*/PS*/ES256/ES384/EdDSA with \
                a key the issuer publishes, `aud` holding the rule's audience, not expired.",
        },
    });
    let schemas = components["schemas"].clone();
    close_flattened(&mut components["schemas"], &schemas);
    let kinds: Vec<String> = PROBLEM_KINDS.iter().map(|k| problem_type(k)).collect();
    components["schemas"]["Problem"]["properties"]["type"]["enum"] = json!(kinds);
    // The rule "updated_input and remember only with allow" as a schema.
    let (allow, deny) = super::control::decide_approval_schemas();
    components["schemas"]["AllowApproval"] = allow;
    components["schemas"]["DenyApproval"] = deny;
    components["schemas"]["DecideApproval"] = json!({
        "description": "The answer to a tool approval.",
        "oneOf": [
            {"$ref": "#/components/schemas/AllowApproval"},
            {"$ref": "#/components/schemas/DenyApproval"},
        ],
    });
    super::openai::message_rules(&mut components["schemas"]);
    // `spec::tool_list` takes a list or one comma-separated string.
    for field in ["allowed_tools", "disallowed_tools"] {
        let property = &mut components["schemas"]["CreateSession"]["properties"][field];
        let description = property["description"].clone();
        *property = json!({
            "description": description,
            "anyOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "string"},
                {"type": "null"},
            ],
        });
    }
    // A message's blocks and sources, closed (serde refuses other fields).
    let text = json!({"type": "string", "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$"});
    let source = json!({"$ref": "#/components/schemas/BlockSource"});
    components["schemas"]["MessageBlock"] = json!({
        "description": "One block of a message: text, an image (PNG, JPEG, GIF, WebP) or a document (PDF).",
        "oneOf": [
            {"type": "object", "required": ["type", "text"], "additionalProperties": false,
             "properties": {"type": {"type": "string", "const": "text"}, "text": text}},
            {"type": "object", "required": ["type", "source"], "additionalProperties": false,
             "properties": {"type": {"type": "string", "const": "image"}, "source": source}},
            {"type": "object", "required": ["type", "source"], "additionalProperties": false,
             "properties": {"type": {"type": "string", "const": "document"}, "source": source,
                            "title": {"type": ["string", "null"], "maxLength": 500, "pattern": "^[^\\x00]*$"}}},
        ],
    });
    let media_types: Vec<&str> = attachment::IMAGE_TYPES
        .iter()
        .chain(attachment::DOCUMENT_TYPES)
        .copied()
        .collect();
    components["schemas"]["BlockSource"] = json!({
        "description": "An attachment's bytes: in the request (base64; they must be the type named), or a file of the session's workspace (its type told from its bytes).",
        "oneOf": [
            {"type": "object", "required": ["type", "media_type", "data"], "additionalProperties": false,
             "properties": {
                "type": {"type": "string", "const": "base64"},
                "media_type": {"type": "string", "enum": media_types},
                "data": {"type": "string", "pattern": "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"},
             }},
            {"type": "object", "required": ["type", "path"], "additionalProperties": false,
             "properties": {
                "type": {"type": "string", "const": "file"},
                "path": {"type": "string", "minLength": 1, "maxLength": 4096, "pattern": "^[^\\x00]+$"},
             }},
        ],
    });
    // A message as a form: its text and its files (`api::message_form`).
    components["schemas"]["MessageForm"] = json!({
        "type": "object",
        "description": "A message as `multipart/form-data`: the text, and images (PNG, JPEG, GIF, WebP) and PDFs as `files` parts (their type is told from their bytes; another is a 415). The turn's other fields are sent as JSON only.",
        "required": ["message"],
        "additionalProperties": false,
        "properties": {
            "message": {"type": "string", "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$", "description": "The prompt's text."},
            "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": attachment::MAX_BLOCKS - 1},
        },
    });
    // A message: non-blank text, or 1 to MAX_BLOCKS blocks.
    components["schemas"]["MessageInput"] = json!({
        "description": "The prompt: text (not empty, at most 1 MiB), or text, image and document blocks.",
        "anyOf": [
            {"type": "string", "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$"},
            {
                "type": "array",
                "items": {"$ref": "#/components/schemas/MessageBlock"},
                "minItems": 1,
                "maxItems": attachment::MAX_BLOCKS,
            },
        ],
    });
    // MCP servers by name: remote (relayed) or stdio, as `domain::mcp` takes them.
    let no_nul = json!({"type": "string", "pattern": "^[^\\x00]*$"});
    components["schemas"]["McpServer"] = json!({
        "description": "An MCP server: `http` (streamable HTTP) and `sse` (the older HTTP+SSE) are reached through the server, which adds the headers (a value, or `{\"secret\": NAME}` for a tenant secret); `stdio` runs in the sandbox with what it is given.",
        "oneOf": [
            {"type": "object", "required": ["type", "url"], "additionalProperties": false,
             "properties": {
                "type": {"type": "string", "enum": ["http", "sse"]},
                "url": {"type": "string", "maxLength": 2048, "pattern": "^[Hh][Tt][Tt][Pp][Ss]?://[^\\x00]*$"},
                "headers": {
                    "type": "object",
                    "propertyNames": {"pattern": "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"},
                    "additionalProperties": {"anyOf": [
                        {"type": "string", "pattern": "^[\\t\\x20-\\x7e]*$"},
                        {"type": "object", "required": ["secret"], "additionalProperties": false,
                         "properties": {"secret": {"type": "string", "minLength": 1, "pattern": "^[^\\x00]+$"}}},
                    ]},
                },
             }},
            {"type": "object", "required": ["command"], "additionalProperties": false,
             "properties": {
                "type": {"type": "string", "const": "stdio"},
                "command": {"type": "string", "pattern": "^[^\\x00]*[^\\s\\x00][^\\x00]*$"},
                "args": {"type": "array", "items": no_nul},
                "env": {"type": "object", "additionalProperties": no_nul},
             }},
        ],
    });
    for body in ["CreateSession", "CreateJob", "TenantDefaults"] {
        let property = &mut components["schemas"][body]["properties"]["mcp_servers"];
        let description = property["description"].clone();
        *property = json!({
            "description": description,
            "anyOf": [
                {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/components/schemas/McpServer"},
                    "propertyNames": {"pattern": "^[A-Za-z0-9_-]{1,64}$"},
                    "maxProperties": claude_code_api_core::domain::mcp::MAX_SERVERS,
                },
                {"type": "null"},
            ],
        });
    }
    // Subagents by name: the names and the count `domain::agent` allows.
    for body in ["CreateSession", "CreateJob", "TenantDefaults"] {
        let property = &mut components["schemas"][body]["properties"]["agents"];
        let description = property["description"].clone();
        *property = json!({
            "description": description,
            "anyOf": [
                {
                    "type": "object",
                    "additionalProperties": {"$ref": "#/components/schemas/AgentSpec"},
                    "propertyNames": {"pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"},
                    "maxProperties": claude_code_api_core::domain::agent::MAX_AGENTS,
                },
                {"type": "null"},
            ],
        });
    }
    for body in REQUEST_BODIES {
        forbid_nul(&mut components["schemas"][*body]);
    }
    super::path_rules::document(doc);
    doc["security"] = json!([{"api_key": []}, {"bearer": []}]);
    doc["paths"]["/mcp"] = super::mcp::path_item();
    // The OpenAI stream's events are that surface's own; `document` points
    // the stream at them.
    doc["components"]["schemas"]["CompletionStreamEvent"] = super::openai::completion_events();
    super::event_stream::document(doc);

    // The turn routes take the message as a form too.
    for path in [
        "/api/v1/sessions/{name}/chat",
        "/api/v1/sessions/{name}/chat/stream",
        "/api/v1/sessions/{name}/jobs",
    ] {
        doc["paths"][path]["post"]["requestBody"]["content"]["multipart/form-data"] =
            json!({"schema": {"$ref": "#/components/schemas/MessageForm"}});
    }
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        let Some(operations) = item.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            // `security: [{}]` marks a route open to anyone.
            let public = operation["security"] == json!([{}]);
            let json_body = operation
                .pointer("/requestBody/content/application~1json")
                .is_some();
            let mut responses = operation["responses"]
                .as_object_mut()
                .map(std::mem::take)
                .unwrap_or_else(Map::new);
            // `middleware::request_context` refuses a NUL in the URL.
            // (`get_mut`: indexing would add `parameters: null`.)
            if let Some(params) = operation
                .get_mut("parameters")
                .and_then(Value::as_array_mut)
            {
                params
                    .iter_mut()
                    .filter(|p| p["in"] == "path" || p["in"] == "query")
                    .for_each(|p| forbid_nul(&mut p["schema"]));
            }
            for (status, name, _, applies) in SHARED_RESPONSES {
                let applies = match applies {
                    Applies::All => true,
                    Applies::Authenticated => !public,
                    Applies::JsonBody => json_body,
                };
                if applies {
                    responses.entry(*status).or_insert_with(
                        || json!({"$ref": format!("#/components/responses/{name}")}),
                    );
                }
            }
            for response in responses.values_mut() {
                // `get_mut`, not indexing: indexing would add `content: null`
                // to every `$ref` response, which OpenAPI forbids.
                let Some(content) = response.get_mut("content") else {
                    continue;
                };
                for media in BINARY_MEDIA_TYPES {
                    if let Some(content) = content.get_mut(*media) {
                        content["schema"] = json!({"type": "string", "contentMediaType": media});
                    }
                }
            }
            operation["responses"] = Value::Object(responses);
        }
    }
}

/// A struct that flattens one with `deny_unknown_fields` comes out as an
/// `allOf` whose part says `additionalProperties: false`, which would refuse
/// the other part's fields. Such parts are inlined without it, and the whole
/// is closed with `unevaluatedProperties: false` instead, which sees every part.
fn close_flattened(value: &mut Value, schemas: &Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::Array(parts)) = map.get_mut("allOf") {
                let mut closed = false;
                for part in parts.iter_mut() {
                    if let Some(name) = part["$ref"]
                        .as_str()
                        .and_then(|r| r.strip_prefix("#/components/schemas/"))
                    {
                        if schemas[name]["additionalProperties"] == json!(false) {
                            *part = schemas[name].clone();
                        }
                    }
                    if let Some(fields) = part.as_object_mut() {
                        closed |= fields.remove("additionalProperties") == Some(json!(false));
                    }
                }
                if closed {
                    map.insert("unevaluatedProperties".into(), json!(false));
                }
            }
            map.values_mut().for_each(|v| close_flattened(v, schemas));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| close_flattened(v, schemas)),
        _ => {}
    }
}

/// The schemas of JSON request bodies, with the parts they are made of.
const REQUEST_BODIES: &[&str] = &[
    "CreateSession",
    "ChatRequest",
    "CreateJob",
    "NewPipeline",
    "StepPlan",
    "AllowApproval",
    "DenyApproval",
    "CountTokens",
    "CompletionRequest",
    "Message",
    "Content",
    "ContentPart",
    "SetWorkingDir",
    "CreateTenant",
    "LimitsBody",
    "CreateKey",
    "NewTrustRule",
];

/// States `JsonObject`'s rule on the strings of a body: no NUL. Strings with
/// a pattern of their own already exclude it (see the patterns).
fn forbid_nul(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        if let Some(items) = schema.as_array_mut() {
            items.iter_mut().for_each(forbid_nul);
        }
        return;
    };
    let is_string = match map.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(ts)) => ts.iter().any(|t| t == "string"),
        _ => false,
    };
    let fixed = ["pattern", "enum", "const", "format"]
        .iter()
        .any(|k| map.contains_key(*k));
    if is_string && !fixed {
        map.insert("pattern".into(), json!("^[^\\x00]*$"));
    }
    for key in [
        "properties",
        "items",
        "anyOf",
        "oneOf",
        "allOf",
        "then",
        "else",
        "contains",
    ] {
        if let Some(child) = map.get_mut(key) {
            if key == "properties" {
                if let Some(props) = child.as_object_mut() {
                    props.values_mut().for_each(forbid_nul);
                }
            } else {
                forbid_nul(child);
            }
        }
    }
}

/// The OpenAPI 3.1 document of this server.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object)),
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// The docs page lives under `/docs/`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "meta",
    security(()),
    responses((status = 308, description = "Redirect to `/docs/`")),
)]
pub async fn docs_redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/docs/"))
        .finish()
}

/// The interactive API documentation (Swagger UI) and its files.
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "meta",
    security(()),
    params(("file" = String, Path, description = "A file of the page; empty for the page itself")),
    responses(
        (status = 200, description = "The page or one of its files", content_type = "text/html"),
        (status = 404, description = "No such file", body = crate::error::Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn docs_file(file: web::Path<String>) -> HttpResponse {
    static CONFIG: OnceLock<Arc<utoipa_swagger_ui::Config<'static>>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        Arc::new(
            utoipa_swagger_ui::Config::new([DOCUMENT_PATH])
                // The public validator badge would be fetched from the internet.
                .validator_url("none")
                .persist_authorization(true),
        )
    });
    match utoipa_swagger_ui::serve(&file, config.clone()) {
        Ok(Some(found)) => {
            let mut res = HttpResponse::Ok();
            if found.gzpipped {
                res.insert_header((header::CONTENT_ENCODING, "gzip"));
            }
            res.content_type(found.content_type);
            // The compiled-in files are sent as they are; only the
            // initializer is made per config.
            match found.bytes {
                std::borrow::Cow::Borrowed(bytes) => res.body(bytes),
                std::borrow::Cow::Owned(bytes) => res.body(bytes),
            }
        }
        Ok(None) => HttpResponse::NotFound().finish(),
        Err(e) => {
            tracing::error!(error = %e, "cannot serve the docs page");
            HttpResponse::InternalServerError().finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_names_every_event_stream_event() {
        let doc = document();
        let events = |schema: &str| -> Vec<String> {
            doc["components"]["schemas"][schema]["oneOf"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    r["$ref"]
                        .as_str()
                        .unwrap()
                        .rsplit('/')
                        .next()
                        .unwrap()
                        .to_owned()
                })
                .collect()
        };
        assert_eq!(events("SessionStreamEvent").len(), 15);
        assert!(events("SessionStreamEvent").contains(&"ResetEvent".to_owned()));
        assert!(!events("TurnStreamEvent").contains(&"JobStatusEvent".to_owned()));
        for name in events("SessionStreamEvent") {
            let event = &doc["components"]["schemas"][&name];
            assert_eq!(
                event["properties"]["data"]["contentMediaType"],
                "application/json"
            );
        }
    }
}
