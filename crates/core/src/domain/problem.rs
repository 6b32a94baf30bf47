//! RFC 9457 problem documents: how every failure is told to a client, in
//! an error response and in a failed turn's `error` event.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The problem `type` URI of a kind.
pub fn problem_type(kind: &str) -> String {
    format!("urn:claude-code-api:problem:{kind}")
}

/// An RFC 9457 problem document, as every error response carries it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:claude-code-api:problem:<slug>`; the slugs are listed in `PROBLEM_KINDS`.
    #[serde(rename = "type")]
    #[schema(example = "urn:claude-code-api:problem:not-found")]
    pub kind: String,
    /// The HTTP reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The request path (added to every error response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Also in the `X-Request-Id` header and the server's logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// `budget_exceeded` only: which budget ran out, `tenant` or `session`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// `budget_exceeded` only: USD spent; `spent_micros` is exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent: Option<f64>,
    /// `budget_exceeded` only: the budget in USD; `limit_micros` is exact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent_micros: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_micros: Option<i64>,
    /// `validation-error` only: what was wrong, as the original lists it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
    /// `disk-quota-exceeded` only: what the tenant keeps on disk, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_bytes: Option<u64>,
    /// `disk-quota-exceeded` only: the tenant's disk quota, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit_bytes: Option<u64>,
}

/// One invalid field of a 422.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct FieldError {
    /// The field (`message`, `max_turns`, …), or `body` when the error is
    /// not about one field.
    pub field: String,
    pub message: String,
    /// `missing`, `extra_forbidden`, `type_error` or `value_error`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    /// Reads the field out of a validation message: serde names it in
    /// backquotes; the server's own messages start with it.
    pub fn of(message: &str) -> FieldError {
        let quoted = || {
            let start = message.find('`')? + 1;
            let len = message[start..].find('`')?;
            Some(message[start..start + len].to_owned())
        };
        let leading = || {
            let word: String = message
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            // `max_turns …`, `output_format.type …`, or `message must …`.
            let compound = word.contains(['_', '.']);
            let verb_follows = [" must ", " is ", " needs "]
                .iter()
                .any(|v| message[word.len()..].starts_with(v));
            let is_field = !word.is_empty() && (compound || verb_follows);
            (is_field && word != "the" && word != "a").then_some(word)
        };
        let (field, kind) = if message.starts_with("missing field") {
            (quoted(), "missing")
        } else if message.starts_with("unknown field") {
            (quoted(), "extra_forbidden")
        } else if message.starts_with("invalid type") {
            (None, "type_error")
        } else {
            (leading(), "value_error")
        };
        FieldError {
            field: field.unwrap_or_else(|| "body".into()),
            message: message.to_owned(),
            kind: kind.to_owned(),
        }
    }
}

impl Problem {
    /// A problem of `kind` (a slug of `PROBLEM_KINDS`) with its status,
    /// the status's reason phrase and what went wrong.
    pub fn new(kind: &str, status: u16, title: &str, detail: String) -> Self {
        Problem {
            kind: problem_type(kind),
            title: title.to_owned(),
            status,
            detail,
            instance: None,
            request_id: None,
            scope: None,
            spent: None,
            limit: None,
            spent_micros: None,
            limit_micros: None,
            errors: None,
            used_bytes: None,
            limit_bytes: None,
        }
    }

    pub fn into_value(self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| Value::Object(Default::default()))
    }
}
