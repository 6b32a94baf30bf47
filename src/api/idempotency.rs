//! `Idempotency-Key` for requests that start work (job creation, sync chat):
//! scoped to the tenant, kept 24 hours. A repeat with the same key and body
//! gets the stored response without running again; the same key with
//! another body is a 422; a repeat while the first is still running is a 409.
//! Only successful responses are stored: after a failure the key is released
//! and the request may be retried.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use claude_code_api_core::error::ServiceError;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;
use claude_code_api_core::db::models::idempotency::{self, Claim};
use claude_code_api_core::db::{self, DbPool};
use claude_code_api_core::security::auth::Caller;

const HEADER: &str = "idempotency-key";
const MAX_KEY_LENGTH: usize = 255;

/// Either run the request (holding the key, if one was sent) or answer with
/// what a previous identical request got.
pub enum Begin {
    Run(Option<Guard>),
    Replay(HttpResponse),
}

/// A claimed key; `finish` stores the response, `release` forgets the claim.
pub struct Guard {
    pool: DbPool,
    tenant_id: String,
    key: String,
}

/// Claims the request's `Idempotency-Key`, if it carries one. `fingerprint`
/// identifies the request (method, path and body).
pub async fn begin(
    state: &AppState,
    caller: &Caller,
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
    let tenant_id = caller.tenant.0.clone();
    let (t, k) = (tenant_id.clone(), key.clone());
    let owner = state.services.instance.id.clone();
    let expired_before = db::now() - chrono::Duration::hours(24);
    let claim = db::run(&state.services.pool, move |c| {
        idempotency::claim(c, &t, &k, &fingerprint, expired_before, &owner)
    })
    .await;
    let claim = match claim {
        Ok(claim) => claim,
        // Two first requests raced on the insert: the loser is a repeat in progress.
        Err(e) if e.is_unique_violation() => Claim::InProgress,
        Err(e) => return Err(e.into()),
    };
    match claim {
        Claim::Fresh => Ok(Begin::Run(Some(Guard {
            pool: state.services.pool.clone(),
            tenant_id,
            key,
        }))),
        Claim::Replay { status, body } => {
            let status = u16::try_from(status)
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let mut res = HttpResponse::build(status);
            res.content_type("application/json")
                .insert_header(("Idempotent-Replayed", "true"));
            if let Some(location) = location_of(&body) {
                res.insert_header(("Location", location));
            }
            Ok(Begin::Replay(res.body(body)))
        }
        Claim::InProgress => Err(ApiError::from(ServiceError::Conflict(
            "a request with this Idempotency-Key is still being processed".into(),
        ))),
        Claim::Mismatch => Err(ApiError::from(ServiceError::Validation(
            "this Idempotency-Key was used with a different request".into(),
        ))),
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

impl Guard {
    pub async fn finish(self, status: StatusCode, body: &str) {
        let body = body.to_owned();
        let status = i32::from(status.as_u16());
        let result = db::run(&self.pool, move |c| {
            idempotency::finish(c, &self.tenant_id, &self.key, status, &body)
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot store an idempotent response");
        }
    }

    pub async fn release(self) {
        let result = db::run(&self.pool, move |c| {
            idempotency::release(c, &self.tenant_id, &self.key)
        })
        .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "cannot release an idempotency key");
        }
    }
}

/// Runs `work` under the key (if any): stores its success, releases on error.
pub async fn run<F, Fut>(guard: Option<Guard>, work: F) -> Result<(StatusCode, String), ApiError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<(StatusCode, String), ApiError>>,
{
    let outcome = work().await;
    if let Some(guard) = guard {
        match &outcome {
            Ok((status, body)) => guard.finish(*status, body).await,
            Err(_) => guard.release().await,
        }
    }
    outcome
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
