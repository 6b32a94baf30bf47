//! `Idempotency-Key` for requests that start work (job creation, sync chat):
//! the header, the request's fingerprint and the replayed response. What a
//! key means (tenant scope, 24 hours, 409 while running, 422 for another
//! body, released after a failure) is `services::idempotency`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;
use claude_code_api_core::services::idempotency::{self, Claimed, Held};
use claude_code_api_core::services::Requester;

const HEADER: &str = "idempotency-key";
const MAX_KEY_LENGTH: usize = 255;

/// Either run the request (holding the key, if one was sent) or answer with
/// what a previous identical request got.
pub enum Begin {
    Run(Option<Held>),
    Replay(HttpResponse),
}

/// Claims the request's `Idempotency-Key`, if it carries one. `fingerprint`
/// identifies the request (method, path and body).
pub async fn begin(
    state: &AppState,
    who: &Requester,
    req: &HttpRequest,
    body: &impl serde::Serialize,
) -> Result<Begin, ApiError> {
    let Some(raw) = req.headers().get(HEADER) else {
        return Ok(Begin::Run(None));
    };
    let key = raw
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LENGTH && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::from(ServiceError::Validation(format!(
                "Idempotency-Key must be 1-{MAX_KEY_LENGTH} visible ASCII characters"
            )))
        })?
        .to_owned();
    let body = serde_json::to_string(body).map_err(ServiceError::internal)?;
    let fingerprint = hex(&Sha256::digest(format!(
        "{} {}\n{body}",
        req.method(),
        req.path()
    )));
    match idempotency::claim(&state.services, who, key, fingerprint).await? {
        Claimed::Fresh(held) => Ok(Begin::Run(Some(held))),
        Claimed::Replay { status, body } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut res = HttpResponse::build(status);
            res.content_type("application/json")
                .insert_header(("Idempotent-Replayed", "true"));
            if let Some(location) = location_of(&body) {
                res.insert_header(("Location", location));
            }
            Ok(Begin::Replay(res.body(body)))
        }
    }
}

/// Stored job documents carry their own URL (for the replayed `Location`).
fn location_of(body: &str) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_str(body).ok()?;
    let data = doc.get("data")?;
    Some(format!(
        "/api/v1/sessions/{}/jobs/{}",
        data.get("session")?.as_str()?,
        data.get("id")?.as_str()?
    ))
}

/// Runs `work` under the key (if any): stores its success, releases on error.
pub async fn run<F, Fut>(held: Option<Held>, work: F) -> Result<(StatusCode, String), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, String), ApiError>>,
{
    let outcome = work().await;
    if let Some(held) = held {
        match &outcome {
            Ok((status, body)) => held.finish(status.as_u16(), body).await,
            Err(_) => held.release().await,
        }
    }
    outcome
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
