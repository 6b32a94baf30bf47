//! The MCP server itself: the `rmcp` handler answering `tools/*` and
//! `resources/*`. Every call goes to the REST API through the `Forward`
//! of the HTTP request that carried it (see `forward.rs`).

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

use super::forward::Forward;
use super::tools::{self, ToolError};

const INSTRUCTIONS: &str = "Sessions are named Claude Code agents, each with its own workspace. \
                            create_session, then chat; create_job for long tasks.";

/// One per MCP session; holds nothing of the caller.
#[derive(Clone)]
pub struct Server {
    client: reqwest::Client,
}

impl Server {
    pub fn new(client: reqwest::Client) -> Server {
        Server { client }
    }
}

/// The REST access of the HTTP request that carried this MCP request.
fn forward(context: &RequestContext<RoleServer>) -> Result<&Forward, ErrorData> {
    on_request_extensions(&context.extensions)
        .and_then(|extensions| extensions.get::<Forward>())
        .ok_or_else(|| ErrorData::internal_error("the request carries no caller", None))
}

/// A tool's result from the REST answer: the envelope's `data` (and
/// `pagination`) on success, the problem document on failure.
fn tool_result(status: u16, body: &Value) -> CallToolResult {
    if !(200..300).contains(&status) {
        return CallToolResult::structured_error(json!({ "error": body }));
    }
    let data = match body.get("data") {
        Some(data) => {
            let mut data = json!({ "data": data });
            if let Some(pagination) = body.get("pagination") {
                data["pagination"] = pagination.clone();
            }
            data
        }
        None => json!({ "status": status }),
    };
    CallToolResult::structured(data)
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
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools::definitions()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools::definitions().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let forward = forward(&context)?;
        let args = request.arguments.unwrap_or_default();
        let call = match tools::call(&request.name, &args) {
            Ok(call) => call,
            Err(e @ ToolError::Unknown(_)) => {
                return Err(ErrorData::invalid_params(e.to_string(), None))
            }
            Err(ToolError::Arguments(why)) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(why)]).into())
            }
        };
        match forward.run(&self.client, call).await {
            Ok((status, body)) => Ok(tool_result(status, &body).into()),
            Err(e) => Err(ErrorData::internal_error(
                format!("internal call failed: {e}"),
                None,
            )),
        }
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let forward = forward(&context)?;
        let call = tools::resource_call("cca://sessions").map_err(|e| {
            ErrorData::internal_error(format!("the session list has no call: {e}"), None)
        })?;
        // The fixed resources are listed even when the session list fails.
        let sessions = match forward.run(&self.client, call).await {
            Ok((200, body)) => body["data"].as_array().cloned().unwrap_or_default(),
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
        let forward = forward(&context)?;
        let uri = request.uri;
        let call =
            tools::resource_call(&uri).map_err(|why| ErrorData::resource_not_found(why, None))?;
        match forward.run(&self.client, call).await {
            Ok((200, body)) => Ok(ReadResourceResult::new(vec![ResourceContents::text(
                body["data"].to_string(),
                uri,
            )
            .with_mime_type("application/json")])
            .into()),
            Ok((404, _)) => Err(ErrorData::resource_not_found(
                format!("resource not found: {uri}"),
                None,
            )),
            Ok((status, body)) => Err(ErrorData::internal_error(format!("{status}: {body}"), None)),
            Err(e) => Err(ErrorData::internal_error(
                format!("internal call failed: {e}"),
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_result_carries_data_and_pagination_or_the_problem() {
        let ok = tool_result(
            200,
            &json!({"data": [1], "pagination": {"total": 1}, "meta": {}}),
        );
        assert_eq!(ok.is_error, Some(false));
        assert_eq!(
            ok.structured_content,
            Some(json!({"data": [1], "pagination": {"total": 1}}))
        );
        let gone = tool_result(204, &Value::Null);
        assert_eq!(gone.structured_content, Some(json!({"status": 204})));
        let missing = tool_result(404, &json!({"status": 404, "type": "x"}));
        assert_eq!(missing.is_error, Some(true));
        assert_eq!(missing.structured_content.unwrap()["error"]["status"], 404);
    }

    #[test]
    fn the_tool_list_names_every_tool_once() {
        let server = Server::new(reqwest::Client::new());
        let tools = tools::definitions();
        assert_eq!(tools.len(), 9);
        for tool in &tools {
            assert_eq!(server.get_tool(&tool.name).as_ref(), Some(tool));
        }
        assert!(server.get_tool("nope").is_none());
    }
}
