//! Boolean query parameters (`?deep=true`, `?overwrite=1`), read one way
//! everywhere.

use claude_code_api_core::error::ServiceError;

use crate::error::ApiError;

/// `true`/`1` or `false`/`0`/empty/absent; anything else is a 422 naming
/// the parameter.
pub fn parse_bool(name: &str, raw: Option<&str>) -> Result<bool, ApiError> {
    match raw {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(other) => Err(ApiError::from(ServiceError::Validation(format!(
            "{name} must be true or false, got {other:?}"
        )))),
    }
}
