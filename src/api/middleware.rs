//! Request context for every response: an `X-Request-ID`, and RFC 9457
//! problem bodies on every error path, including the ones no handler wrote
//! (unknown routes, 405, extractor failures).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use serde_json::Value;
use tracing::Instrument;

use crate::error::{generic_problem, ApiError, PROBLEM_CONTENT_TYPE};
pub use crate::identity::marks::RequestId;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Accepts a caller's id when it is short and plain, else makes one.
fn request_id_for(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

pub async fn request_context(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let request_id = request_id_for(&req);
    req.extensions_mut().insert(RequestId(request_id.clone()));
    let path = req.path().to_owned();
    // `session` is filled in once a handler knows which session it serves.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %req.method(),
        path = %path,
        session = tracing::field::Empty,
    );
    // A NUL can reach neither a file name nor a database column (PostgreSQL
    // refuses it): a URL that encodes one is refused before any handler.
    let res = if req.uri().to_string().contains("%00") {
        let refused = ApiError::from(ServiceError::BadRequest(
            "the URL must not contain a NUL character (%00)".into(),
        ));
        req.into_response(actix_web::ResponseError::error_response(&refused))
    } else {
        next.call(req)
            .instrument(span.clone())
            .await?
            .map_into_boxed_body()
    };
    let _entered = span.entered();
    let mut res = problemize(res, &request_id);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let status = res.status();
    if status.is_server_error() {
        tracing::warn!(request_id = %request_id, %path, status = status.as_u16(), "request failed");
    } else {
        tracing::debug!(request_id = %request_id, %path, status = status.as_u16(), "request served");
    }
    Ok(res)
}

/// Marks an error response whose body is the document its route promises
/// (`/health`'s 503 is a health report), kept as the handler wrote it.
pub struct OwnErrorBody;

/// Turns any error response into a complete problem document carrying the
/// request's `instance` and `request_id`.
fn problemize(res: ServiceResponse<BoxBody>, request_id: &str) -> ServiceResponse<BoxBody> {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return res;
    }
    let problem: Value = match res.response().error() {
        Some(err) => match err.as_error::<ApiError>() {
            Some(api) => api.0.problem(),
            None => generic_problem(err.as_response_error().status_code().as_u16()),
        },
        None => generic_problem(status.as_u16()),
    };
    // Keep a handler's own problem document when it wrote one, and the
    // console's error pages (HTML, for a person).
    let console_page = res.request().path().starts_with(crate::state::CONSOLE_BASE);
    let own_problem = res.headers().get(header::CONTENT_TYPE).is_some_and(|ct| {
        ct.as_bytes() == PROBLEM_CONTENT_TYPE.as_bytes()
            || (console_page && ct.as_bytes().starts_with(b"text/html"))
    });
    let own_body = res.response().extensions().contains::<OwnErrorBody>();
    if (own_problem || own_body) && res.response().error().is_none() {
        return res;
    }
    let (req, old) = res.into_parts();
    problem_response(req, status, old.headers(), problem, request_id)
}

/// `problem`, completed with the request's `instance` and `request_id`, as
/// the `status` response to `req`; `headers` (but the body's) are carried over.
pub fn problem_response(
    req: HttpRequest,
    status: StatusCode,
    headers: &HeaderMap,
    mut problem: Value,
    request_id: &str,
) -> ServiceResponse<BoxBody> {
    problem["instance"] = Value::String(req.path().to_owned());
    problem["request_id"] = Value::String(request_id.to_owned());
    let mut new = HttpResponse::build(status);
    for (name, value) in headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.append_header((name.clone(), value.clone()));
        }
    }
    let new = new
        .content_type(PROBLEM_CONTENT_TYPE)
        .body(problem.to_string());
    ServiceResponse::new(req, new)
}

/// Counts every request in the metrics by its route pattern and status.
pub async fn track_http(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let res = next.call(req).await?;
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    claude_code_api_core::metrics::http_request_answered(
        method.as_str(),
        &route,
        res.status().as_u16(),
        started.elapsed(),
    );
    Ok(res)
}
