//! Every failure of a service: `ServiceError` names its kind, the status it
//! stands for and a stable RFC 9457 problem `type`. The problem document is
//! part of the contract (a failed turn's `error` event carries one), so it
//! is built here; the HTTP edge only writes it out. Internal faults become a
//! generic 500; their cause goes to the log, never to the client.

use reqwest::StatusCode;
use serde_json::Value;

pub use crate::domain::problem::{problem_type, FieldError, Problem};
use crate::domain::turn::TurnError;

pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Validation(String),
    #[error("a valid API key is required (X-API-Key or Authorization: Bearer)")]
    Unauthorized,
    /// A bearer token (JWT) was refused; carries why (see
    /// `security::tokens::Refusal`).
    #[error("{0}")]
    TokenRefused(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    RateLimited(String),
    /// All of the tenant's running-turn permits are taken (429, Retry-After).
    #[error("{0}")]
    TooBusy(String),
    /// Spend would pass a budget (`scope`: tenant or session); amounts in micro-USD.
    #[error("the {scope} budget is used up: spent ${:.6} of ${:.6}", *spent_micros as f64 / 1e6, *limit_micros as f64 / 1e6)]
    BudgetExceeded {
        scope: &'static str,
        spent_micros: i64,
        limit_micros: i64,
    },
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Content of a kind the server does not take (an attachment's type).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The CLI ended the turn with an error; carries its message.
    #[error("{0}")]
    Cli(String),
    #[error("{0}")]
    CliTimeout(String),
    #[error("{0}")]
    Unavailable(String),
    /// A service the server called for the client (a git remote, a
    /// provider's API) failed or refused; carries its message.
    #[error("{0}")]
    Upstream(String),
    /// The tenant's disk quota is reached (507): its agents and uploads
    /// may write nothing more until files are deleted.
    #[error("{message}")]
    DiskQuotaExceeded {
        message: String,
        used_bytes: u64,
        limit_bytes: u64,
    },
    #[error("internal error")]
    Internal(String),
}

impl From<crate::blocking::Panicked> for ServiceError {
    fn from(e: crate::blocking::Panicked) -> Self {
        ServiceError::internal(e)
    }
}

impl ServiceError {
    /// Stable problem type slug for each kind.
    pub fn kind(&self) -> &'static str {
        match self {
            ServiceError::BadRequest(_) => "bad-request",
            ServiceError::Validation(_) => "validation-error",
            ServiceError::Unauthorized | ServiceError::TokenRefused(_) => "unauthorized",
            ServiceError::Forbidden(_) => "forbidden",
            ServiceError::NotFound(_) => "not-found",
            ServiceError::RateLimited(_) => "rate-limited",
            ServiceError::TooBusy(_) => "too-many-running-turns",
            ServiceError::BudgetExceeded { .. } => "budget_exceeded",
            ServiceError::Conflict(_) => "conflict",
            ServiceError::PayloadTooLarge(_) => "payload-too-large",
            ServiceError::UnsupportedMediaType(_) => "unsupported-media-type",
            ServiceError::Cli(_) => "cli-error",
            ServiceError::CliTimeout(_) => "cli-timeout",
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::Upstream(_) => "upstream-error",
            ServiceError::DiskQuotaExceeded { .. } => "disk-quota-exceeded",
            ServiceError::Internal(_) => "internal-error",
        }
    }

    pub fn internal(cause: impl std::fmt::Display) -> ServiceError {
        ServiceError::Internal(cause.to_string())
    }

    /// The problem document, without the per-request members.
    pub fn problem(&self) -> Value {
        self.problem_document().into_value()
    }

    /// The problem document, typed.
    pub fn problem_document(&self) -> Problem {
        let status = self.status_code();
        let mut problem = Problem::new(
            self.kind(),
            status.as_u16(),
            title(status),
            self.to_string(),
        );
        if let ServiceError::BudgetExceeded {
            scope,
            spent_micros,
            limit_micros,
        } = self
        {
            problem.scope = Some((*scope).to_owned());
            problem.spent = Some(*spent_micros as f64 / 1e6);
            problem.limit = Some(*limit_micros as f64 / 1e6);
            problem.spent_micros = Some(*spent_micros);
            problem.limit_micros = Some(*limit_micros);
        }
        if let ServiceError::Validation(message) = self {
            problem.errors = Some(vec![FieldError::of(message)]);
        }
        if let ServiceError::DiskQuotaExceeded {
            used_bytes,
            limit_bytes,
            ..
        } = self
        {
            problem.used_bytes = Some(*used_bytes);
            problem.limit_bytes = Some(*limit_bytes);
        }
        problem
    }
}

/// Every problem `type` slug the server uses (`urn:claude-code-api:problem:<slug>`).
pub const PROBLEM_KINDS: &[&str] = &[
    "bad-request",
    "validation-error",
    "unauthorized",
    "forbidden",
    "not-found",
    "method-not-allowed",
    "request-timeout",
    "rate-limited",
    "too-many-running-turns",
    "budget_exceeded",
    "conflict",
    "payload-too-large",
    "unsupported-media-type",
    "cli-error",
    "cli-timeout",
    "unavailable",
    "upstream-error",
    "disk-quota-exceeded",
    "internal-error",
    "http-error",
];

impl ServiceError {
    /// The HTTP status this kind of failure answers with.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ServiceError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ServiceError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ServiceError::Unauthorized | ServiceError::TokenRefused(_) => StatusCode::UNAUTHORIZED,
            ServiceError::Forbidden(_) => StatusCode::FORBIDDEN,
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::RateLimited(_) | ServiceError::TooBusy(_) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ServiceError::BudgetExceeded { .. } => StatusCode::PAYMENT_REQUIRED,
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ServiceError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ServiceError::Cli(_) => StatusCode::BAD_GATEWAY,
            ServiceError::CliTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ServiceError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ServiceError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ServiceError::DiskQuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Headers the answer carries besides the problem document.
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self {
            ServiceError::Unauthorized => &[("WWW-Authenticate", "Bearer")],
            // RFC 6750 §3.1: the token was presented and is not valid.
            ServiceError::TokenRefused(_) => {
                &[("WWW-Authenticate", "Bearer error=\"invalid_token\"")]
            }
            ServiceError::TooBusy(_) => &[("Retry-After", "5")],
            _ => &[],
        }
    }
}

/// The problem for a status that no handler described (unknown route, 405…).
pub fn generic_problem(status: u16) -> Value {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let kind = match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not-found",
        405 => "method-not-allowed",
        408 => "request-timeout",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        422 => "validation-error",
        s if s >= 500 => "internal-error",
        _ => "http-error",
    };
    let detail = match status.as_u16() {
        404 => "no such resource".to_owned(),
        405 => "this method is not allowed on this resource".to_owned(),
        s if s >= 500 => "internal error".to_owned(),
        _ => title(status).to_owned(),
    };
    Problem::new(kind, status.as_u16(), title(status), detail).into_value()
}

fn title(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}

impl From<actix::MailboxError> for ServiceError {
    fn from(e: actix::MailboxError) -> Self {
        ServiceError::Unavailable(format!("the session is not available: {e}"))
    }
}

impl From<&TurnError> for ServiceError {
    fn from(e: &TurnError) -> Self {
        match e {
            TurnError::Cli { message, .. } => ServiceError::Cli(message.clone()),
            TurnError::Process(message) => ServiceError::Cli(message.clone()),
            TurnError::Timeout(_) => ServiceError::CliTimeout(e.to_string()),
            TurnError::Closed => ServiceError::Unavailable(e.to_string()),
            TurnError::NoModelCredential => ServiceError::Unavailable(e.to_string()),
            TurnError::Cancelled => ServiceError::Conflict(e.to_string()),
            TurnError::Busy => ServiceError::TooBusy(e.to_string()),
            TurnError::OverBudget {
                scope,
                spent_micros,
                limit_micros,
            } => ServiceError::BudgetExceeded {
                scope,
                spent_micros: *spent_micros,
                limit_micros: *limit_micros,
            },
            TurnError::DiskQuota {
                message,
                used_bytes,
                limit_bytes,
            } => ServiceError::DiskQuotaExceeded {
                message: message.clone(),
                used_bytes: *used_bytes,
                limit_bytes: *limit_bytes,
            },
        }
    }
}

impl From<TurnError> for ServiceError {
    fn from(e: TurnError) -> Self {
        ServiceError::from(&e)
    }
}

/// The problem document of a failed turn (the `error` event's payload),
/// with its `detail` also as `error`, the member clients of the original read.
pub fn turn_problem(e: &TurnError) -> crate::domain::event::TurnProblem {
    let problem = ServiceError::from(e).problem_document();
    crate::domain::event::TurnProblem {
        error: problem.detail.clone(),
        problem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_kind_is_listed() {
        let s = String::new;
        let errors = [
            ServiceError::BadRequest(s()),
            ServiceError::Validation(s()),
            ServiceError::Unauthorized,
            ServiceError::TokenRefused(s()),
            ServiceError::Forbidden(s()),
            ServiceError::NotFound(s()),
            ServiceError::RateLimited(s()),
            ServiceError::TooBusy(s()),
            ServiceError::BudgetExceeded {
                scope: "tenant",
                spent_micros: 2,
                limit_micros: 1,
            },
            ServiceError::Conflict(s()),
            ServiceError::PayloadTooLarge(s()),
            ServiceError::UnsupportedMediaType(s()),
            ServiceError::Cli(s()),
            ServiceError::CliTimeout(s()),
            ServiceError::Unavailable(s()),
            ServiceError::DiskQuotaExceeded {
                message: s(),
                used_bytes: 2,
                limit_bytes: 1,
            },
            ServiceError::Internal(s()),
        ];
        let generic = 400..600;
        let types = errors
            .iter()
            .map(ServiceError::problem)
            .chain(generic.map(generic_problem));
        for problem in types {
            let kind = problem["type"].as_str().unwrap_or_default();
            let slug = kind.trim_start_matches("urn:claude-code-api:problem:");
            assert!(
                PROBLEM_KINDS.contains(&slug),
                "{kind} is not in PROBLEM_KINDS"
            );
        }
    }

    #[test]
    fn validation_errors_name_their_field() {
        let of = |m: &str| {
            let e = FieldError::of(m);
            (e.field, e.kind)
        };
        assert_eq!(
            of("missing field `message` at line 1 column 2"),
            ("message".into(), "missing".into())
        );
        assert_eq!(
            of("unknown field `foo`, expected one of `message`"),
            ("foo".into(), "extra_forbidden".into())
        );
        assert_eq!(
            of("message must not be empty"),
            ("message".into(), "value_error".into())
        );
        assert_eq!(
            of("max_turns must be at least 1"),
            ("max_turns".into(), "value_error".into())
        );
        assert_eq!(
            of("output_format.type \"json\" is not supported"),
            ("output_format.type".into(), "value_error".into())
        );
        assert_eq!(
            of("the path field is too long"),
            ("body".into(), "value_error".into())
        );
        assert_eq!(
            of("invalid type: integer `1`, expected a string"),
            ("body".into(), "type_error".into())
        );
        let problem = ServiceError::Validation("message must not be empty".into()).problem();
        assert_eq!(problem["errors"][0]["field"], "message");
        assert_eq!(problem["errors"][0]["type"], "value_error");
    }

    #[test]
    fn budget_problems_carry_the_amounts() {
        let problem = ServiceError::BudgetExceeded {
            scope: "session",
            spent_micros: 1_500_000,
            limit_micros: 1_000_000,
        }
        .problem();
        assert_eq!(problem["scope"], "session");
        assert_eq!(problem["spent_micros"], 1_500_000);
        assert_eq!(problem["limit"], 1.0);
        assert!(ServiceError::NotFound("x".into())
            .problem()
            .get("scope")
            .is_none());
    }
}
