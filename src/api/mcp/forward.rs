//! How a tool or resource reaches the REST API as its caller: an HTTP call
//! to this same server, on the address the client reached, with the
//! caller's own key and request id. Built from each MCP request, so a call
//! always acts with the key of the request that made it.

use actix_web::{HttpMessage, HttpRequest};
use serde_json::Value;

use super::tools::Call;
use crate::api::middleware::RequestId;
use crate::security::auth::presented_key;
use crate::security::rate_limit::FORWARD_HEADER;

/// What one MCP request needs to call the REST API as its caller.
#[derive(Clone)]
pub struct Forward {
    base: url::Url,
    authorization: String,
    request_id: String,
    /// Spares the call the rate limit: its MCP request was counted.
    forward_token: String,
}

impl Forward {
    /// `None` without a key (the access check turned such requests away).
    pub fn from_request(req: &HttpRequest) -> Option<Forward> {
        let key = presented_key(req)?;
        let base = url::Url::parse(&format!("http://{}", req.app_config().local_addr())).ok()?;
        let request_id = req
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default();
        let forward_token = req
            .app_data::<actix_web::web::Data<crate::api::AppState>>()?
            .rate_limits
            .forward_token()
            .to_owned();
        Some(Forward {
            base,
            authorization: format!("Bearer {key}"),
            request_id,
            forward_token,
        })
    }

    /// Runs the call; the status and the JSON body (`null` when empty).
    pub async fn run(&self, client: &reqwest::Client, call: Call) -> Result<(u16, Value), String> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| "bad base URL".to_owned())?
            .clear()
            .extend(["api", "v1"])
            .extend(&call.segments);
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter());
        }
        let mut request = client
            .request(call.method, url)
            .header("authorization", &self.authorization)
            .header("x-request-id", &self.request_id)
            .header(FORWARD_HEADER, &self.forward_token);
        if let Some(body) = call.body {
            request = request.json(&body);
        }
        let res = request.send().await.map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let text = res.text().await.map_err(|e| e.to_string())?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, body))
    }
}
