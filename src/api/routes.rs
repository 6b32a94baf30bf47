//! The route table: every route the server serves, and the middleware
//! around each scope. It imports the handlers; nothing imports it but the
//! application that mounts it.

use actix_web::web;
use claude_code_api_core::error::ServiceError;

use super::route_table::{route_table, RouteTable};
use super::{
    admin, audit, chat, control, egress, files, forks, forward, git, health, history, jobs, limits,
    mcp, me, members, model_credentials, nodes, openai, openapi, pipelines, repos, schedules,
    secrets, sessions, templates, tenant_defaults, trust_rules, usage, webhooks, working_dir,
};
use crate::state::API_V1;
use crate::state::JSON_LIMIT;

/// Routes outside the API scopes, open to anyone: health and the documentation.
fn root_routes() -> RouteTable {
    route_table!("";
        "/health" => { get: health::root_health },
        "/docs" => { get: openapi::docs_redirect },
        "/docs/{file:.*}" => { get: openapi::docs_file },
    )
}

/// The OpenAI-compatible surface (same keys, tenants and rate limits).
fn openai_routes() -> RouteTable {
    route_table!("/v1";
        "/chat/completions" => { post: openai::chat_completions },
        "/models" => { get: openai::list_models },
    )
}

/// The REST API, behind the per-key rate limit.
fn api_v1_routes() -> RouteTable {
    route_table!(API_V1;
        "/health" => { get: health::health },
        "/openapi.json" => { get: openapi::openapi_json },
        "/sessions" => { post: sessions::create_session, get: sessions::list_sessions },
        "/sessions/{name}" => { get: sessions::get_session, delete: sessions::delete_session },
        "/sessions/{name}/chat" => { post: chat::chat },
        "/sessions/{name}/chat/stream" => { post: chat::chat_stream },
        "/sessions/{name}/history" => { get: history::get_history },
        "/sessions/{name}/jobs" => { post: jobs::create_job, get: jobs::list_jobs },
        "/sessions/{name}/jobs/{id}" => { get: jobs::get_job },
        "/sessions/{name}/jobs/{id}/cancel" => { post: jobs::cancel_job },
        "/pipelines" => { post: pipelines::create_pipeline, get: pipelines::list_pipelines },
        "/pipelines/{id}" => { get: pipelines::get_pipeline },
        "/pipelines/{id}/cancel" => { post: pipelines::cancel_pipeline },
        "/webhooks/deliveries" => { get: webhooks::list_deliveries },
        "/webhooks/deliveries/{id}/redeliver" => { post: webhooks::redeliver },
        "/webhooks/secret" => { get: webhooks::get_webhook_secret },
        "/webhooks/secret/rotate" => { post: webhooks::rotate_webhook_secret },
        "/sessions/{name}/repo" => { post: working_dir::set_working_dir },
        "/sessions/{name}/git" => { get: git::get_git },
        "/sessions/{name}/diff" => { get: git::get_diff },
        "/sessions/{name}/mcp" => { get: sessions::get_mcp },
        "/sessions/{name}/fork" => { post: forks::fork_session },
        "/sessions/{name}/forks" => { get: forks::list_forks },
        "/sessions/{name}/commit" => { post: git::commit },
        "/sessions/{name}/push" => { post: git::push },
        "/sessions/{name}/pull-request" => { post: git::pull_request },
        "/repos" => { post: repos::create_repo, get: repos::list_repos },
        "/schedules" => { post: schedules::create_schedule, get: schedules::list_schedules },
        "/schedules/{id}" => {
            get: schedules::get_schedule,
            delete: schedules::delete_schedule,
        },
        "/schedules/{id}/pause" => { post: schedules::pause_schedule },
        "/schedules/{id}/resume" => { post: schedules::resume_schedule },
        "/schedules/{id}/trigger" => { post: schedules::trigger_schedule },
        "/schedules/{id}/runs" => { get: schedules::list_schedule_runs },
        "/secrets" => { get: secrets::list_secrets },
        "/secrets/{name}" => { put: secrets::put_secret, delete: secrets::delete_secret },
        "/repos/{name}" => {
            get: repos::get_repo,
            patch: repos::update_repo,
            delete: repos::delete_repo,
        },
        "/sessions/{name}/files" => { post: files::upload_file, get: files::list_files },
        "/sessions/{name}/files/{path:.*}" => {
            get: files::download_file,
            delete: files::delete_file,
        },
        "/sessions/{name}/archive" => { get: files::download_archive },
        "/sessions/{name}/events" => { get: control::session_events },
        "/sessions/{name}/interrupt" => { post: control::interrupt_session },
        "/sessions/{name}/approvals" => { get: control::list_approvals },
        "/sessions/{name}/approvals/{id}" => { post: control::decide_approval },
        "/templates" => { get: templates::list_templates },
        "/templates/reload" => { post: templates::reload_templates },
        "/templates/{name}" => { get: templates::get_template },
        "/usage" => { get: usage::get_usage },
        "/tokens/count" => { post: usage::count_tokens },
        "/audit" => { get: audit::list_audit },
        "/me" => { get: me::me },
        "/me/keys" => { get: me::list_my_keys, post: me::create_my_key },
        "/me/keys/{id}/revoke" => { post: me::revoke_my_key },
        "/admin/tenants" => { get: admin::list_tenants, post: admin::create_tenant },
        "/admin/tenants/{id}" => { patch: admin::update_tenant },
        "/admin/tenants/{id}/model-credential" => {
            get: model_credentials::get_model_credential,
            put: model_credentials::set_model_credential,
            delete: model_credentials::delete_model_credential,
        },
        "/admin/tenants/{id}/egress" => { get: egress::get_egress, put: egress::set_egress },
        "/admin/tenants/{id}/defaults" => {
            get: tenant_defaults::get_defaults,
            put: tenant_defaults::set_defaults,
        },
        "/admin/keys" => { get: admin::list_keys, post: admin::create_key },
        "/admin/keys/{id}/revoke" => { post: admin::revoke_key },
        "/admin/trust-rules" => {
            get: trust_rules::list_trust_rules,
            post: trust_rules::create_trust_rule,
        },
        "/admin/trust-rules/{id}" => { delete: trust_rules::delete_trust_rule },
        "/admin/nodes" => { get: nodes::list_nodes },
        "/admin/members" => { get: members::list_members },
        "/admin/members/{id}" => {
            patch: members::change_member,
            delete: members::remove_member,
        },
        "/admin/members/{id}/sign-out" => { post: members::sign_out_member },
        "/admin/invitations" => {
            get: members::list_invitations,
            post: members::create_invitation,
        },
        "/admin/invitations/{id}" => { delete: members::withdraw_invitation },
    )
}

/// `(method, path)` of every route the server serves, paths in OpenAPI form.
pub fn served_routes() -> Vec<(&'static str, String)> {
    let tables = [root_routes(), openai_routes(), api_v1_routes()];
    let mut all: Vec<_> = tables.iter().flat_map(RouteTable::listing).collect();
    // Served by the MCP SDK's transport rather than a table.
    all.extend(mcp::ROUTES.iter().map(|(m, p)| (*m, (*p).to_owned())));
    all
}

pub fn routes(cfg: &mut web::ServiceConfig, mcp_server: &mcp::McpServer) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT)
            .error_handler(|err, _| crate::error::json_error(err).into()),
    )
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        crate::error::ApiError::from(ServiceError::Validation(format!(
            "invalid query string: {err}"
        )))
        .into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        crate::error::ApiError::from(ServiceError::NotFound(format!("no such resource: {err}")))
            .into()
    }))
    .configure(root_routes().register)
    // MCP (streamable HTTP transport), rate-limited inside.
    .service(mcp::scope(mcp_server))
    .service(limited(openai_routes()))
    .service(limited(api_v1_routes()));
}

/// A table's routes in their scope, behind the per-key rate limit.
fn limited(table: RouteTable) -> impl actix_web::dev::HttpServiceFactory {
    web::scope(table.prefix)
        // Inner: runs once the key is known (a session's tenant is needed
        // to find the node that runs it).
        .wrap(actix_web::middleware::from_fn(forward::middleware))
        .wrap(actix_web::middleware::from_fn(limits::middleware))
        .configure(table.register)
}
