//! The SDK answers a transport fault (a wrong `Accept`, no session id, an
//! oversized body) in plain text or as a JSON-RPC error; the API answers
//! every error with a problem document. This turns the first into the
//! second and keeps the SDK's words as its `detail`.

use actix_web::body::{to_bytes_limited, BoxBody};
use actix_web::dev::ServiceResponse;
use actix_web::http::header;
use actix_web::HttpMessage;
use serde_json::Value;

use crate::api::middleware::{problem_response, RequestId};
use crate::error::{generic_problem, PROBLEM_CONTENT_TYPE};

/// Longest SDK error body read for its message.
const MAX_DETAIL_BODY: usize = 8 * 1024;

/// The SDK's client-error response as a problem document; anything else as is.
pub async fn from_sdk(res: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes());
    if !status.is_client_error() || is_problem {
        return res;
    }
    let (req, response) = res.into_parts();
    let (head, body) = response.into_parts();
    let bytes = to_bytes_limited(body, MAX_DETAIL_BODY)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let mut problem = generic_problem(status.as_u16());
    if let Some(detail) = detail(&bytes) {
        problem["detail"] = Value::String(detail);
    }
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    problem_response(req, status, head.headers(), problem, &request_id)
}

/// A JSON-RPC error's message, or the plain text.
fn detail(body: &[u8]) -> Option<String> {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(json) => json["error"]["message"].as_str()?.to_owned(),
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    Some(text).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_detail_is_the_rpc_message_or_the_text() {
        let rpc = br#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"bad header"}}"#;
        assert_eq!(detail(rpc).as_deref(), Some("bad header"));
        assert_eq!(
            detail(b"Bad Request: Session ID is required\n").as_deref(),
            Some("Bad Request: Session ID is required")
        );
        assert_eq!(detail(b""), None);
        assert_eq!(detail(br#"{"other":1}"#), None);
    }
}
