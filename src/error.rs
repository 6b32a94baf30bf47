//! The HTTP edge of every failure: an `ApiError` is a service's failure
//! written out as its status, headers and RFC 9457 problem document. The
//! one mapping is `From<ServiceError>`; what each kind means lives in the
//! core's `error` module.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
pub use claude_code_api_core::error::{
    generic_problem, problem_type, Problem, ServiceError, PROBLEM_CONTENT_TYPE, PROBLEM_KINDS,
};

/// A failure as a handler answers it.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status_code().as_u16())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        if let ServiceError::Internal(cause) = &self.0 {
            tracing::error!(%cause, "internal error");
        }
        let mut builder = HttpResponse::build(self.status_code());
        builder.content_type(PROBLEM_CONTENT_TYPE);
        for header in self.0.extra_headers() {
            builder.insert_header(*header);
        }
        builder.body(self.0.problem().to_string())
    }
}

/// JSON body errors: malformed → 400, well-formed but wrong → 422, too big → 413.
pub fn json_error(err: actix_web::error::JsonPayloadError) -> ApiError {
    use actix_web::error::JsonPayloadError as E;
    ApiError(match err {
        E::OverflowKnownLength { length, limit } => ServiceError::PayloadTooLarge(format!(
            "the JSON body is {length} bytes; the limit is {limit}"
        )),
        E::Overflow { limit } => ServiceError::PayloadTooLarge(format!(
            "the JSON body exceeds the limit of {limit} bytes"
        )),
        E::ContentType => ServiceError::BadRequest(
            "the body must be JSON (Content-Type: application/json)".into(),
        ),
        E::Deserialize(e) if e.is_data() => ServiceError::Validation(e.to_string()),
        E::Deserialize(e) => ServiceError::BadRequest(format!("malformed JSON: {e}")),
        other => ServiceError::BadRequest(other.to_string()),
    })
}
