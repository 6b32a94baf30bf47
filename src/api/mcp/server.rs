//! The MCP server itself: the `rmcp` handler answering `tools/*` and
//! `resources/*`. Every call runs through the services as the `Requester`
//! of the HTTP request that carried it (see `McpContext`).

use claude_code_api_core::error::ServiceError;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, ResourceContents,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use rmcp_actix_web::transport::on_request_extensions;
use serde_json::{json, Value};

use super::tools::{self, ToolError};
use claude_code_api_core::services::{Requester, Services};

const INSTRUCTIONS: &str = "Sessions are named Claude Code agents, each with its own workspace. \
                            create_session, then chat; create_job for long tasks.";

/// One per MCP session; holds nothing of the caller.
#[derive(Clone, Default)]
pub struct Server;

/// What an MCP request acts with: who made its HTTP request (so a call
/// always acts with the key of the request that made it) and the services.
#[derive(Clone)]
pub struct McpContext {
    pub services: Services,
    pub who: Requester,
}

impl McpContext {
    /// `None` before the gate let the request through (it never is, then).
    pub fn of(req: &actix_web::HttpRequest) -> Option<McpContext> {
        use actix_web::HttpMessage;
        let who = req.extensions().get::<crate::identity::Who>()?.clone();
        let state = req.app_data::<actix_web::web::Data<crate::state::AppState>>()?;
        Some(McpContext {
            services: state.services.clone(),
            who: who.0,
        })
    }
}

/// The caller of the HTTP request that carried this MCP request.
fn caller(context: &RequestContext<RoleServer>) -> Result<&McpContext, ErrorData> {
    on_request_extensions(&context.extensions)
        .and_then(|extensions| extensions.get::<McpContext>())
        .ok_or_else(|| ErrorData::internal_error("the request carries no caller", None))
}

/// A tool's result: its data (and `pagination`) on success, the problem
/// document when the services refused.
fn tool_result(outcome: Result<Value, ToolError>) -> Result<CallToolResult, ErrorData> {
    match outcome {
        Ok(data) => Ok(CallToolResult::structured(data)),
        Err(ToolError::Refused(e)) => {
            if let ServiceError::Internal(cause) = &e {
                tracing::error!(%cause, "an MCP tool failed");
            }
            Ok(CallToolResult::structured_error(
                json!({ "error": e.problem() }),
            ))
        }
        Err(ToolError::Arguments(why)) => Ok(CallToolResult::error(vec![ContentBlock::text(why)])),
        Err(e @ ToolError::Unknown(_)) => Err(ErrorData::invalid_params(e.to_string(), None)),
    }
}

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("claude-code-api", env!("CARGO_PKG_VERSION"))
                    .with_title("Claude Code API"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let McpContext { who, .. } = caller(&context)?;
        Ok(ListToolsResult::with_all_items(tools::definitions_for(
            who.role(),
        )))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::definitions().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let McpContext { services, who } = caller(&context)?;
        let args = request.arguments.unwrap_or_default();
        let outcome = tools::run(services, who, &request.name, &args).await;
        Ok(tool_result(outcome)?.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let McpContext { services, who } = caller(&context)?;
        // The fixed resources are listed even when the session list fails.
        let sessions = match tools::read(services, who, "cca://sessions").await {
            Ok(Some(Value::Array(sessions))) => sessions,
            _ => vec![],
        };
        Ok(ListResourcesResult::with_all_items(tools::resource_list(
            &sessions,
        )))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            tools::resource_templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let McpContext { services, who } = caller(&context)?;
        let uri = request.uri;
        match tools::read(services, who, &uri).await {
            Ok(Some(body)) => Ok(ReadResourceResult::new(vec![ResourceContents::text(
                body.to_string(),
                uri,
            )
            .with_mime_type("application/json")])
            .into()),
            Ok(None) => Err(ErrorData::resource_not_found(
                format!("resource not found: {uri}"),
                None,
            )),
            Err(e) => Err(ErrorData::internal_error(e.to_string(), None)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_result_carries_the_data_or_the_problem() {
        let ok = tool_result(Ok(json!({"data": [1], "pagination": {"total": 1}}))).unwrap();
        assert_eq!(ok.is_error, Some(false));
        assert_eq!(
            ok.structured_content,
            Some(json!({"data": [1], "pagination": {"total": 1}}))
        );
        let missing = tool_result(Err(ToolError::Refused(ServiceError::NotFound(
            "no session".into(),
        ))))
        .unwrap();
        assert_eq!(missing.is_error, Some(true));
        assert_eq!(missing.structured_content.unwrap()["error"]["status"], 404);
        let bad = tool_result(Err(ToolError::Arguments("no".into()))).unwrap();
        assert_eq!(bad.is_error, Some(true));
        assert!(tool_result(Err(ToolError::Unknown("x".into()))).is_err());
    }

    #[test]
    fn the_tool_list_names_every_tool_once() {
        let server = Server;
        let tools = tools::definitions();
        assert_eq!(tools.len(), 9);
        for tool in &tools {
            assert_eq!(server.get_tool(&tool.name).as_ref(), Some(tool));
        }
        assert!(server.get_tool("nope").is_none());
    }
}
