//! Webhook deliveries (each event with its attempts, redelivery) and the
//! tenant's signing secret (read, rotate).

use crate::identity::Who;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use utoipa::ToSchema;

use super::envelope::{self, Envelope, Page, PageQuery, Paged};
use crate::error::{ApiError, Problem};
use crate::state::AppState;
use claude_code_api_core::db::models::webhook::{Attempt, Delivery};
use claude_code_api_core::domain::timestamp;
use claude_code_api_core::services::webhooks;

/// One try at sending an event.
#[derive(Debug, Serialize, ToSchema)]
pub struct AttemptData {
    /// From 1.
    attempt: i64,
    /// The receiver's HTTP status, when it answered.
    status_code: Option<i32>,
    /// Why the attempt failed, when it did.
    error: Option<String>,
    duration_ms: i64,
    created_at: String,
}

/// One webhook event and its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryData {
    id: String,
    /// The `webhook-id` header: the same on every attempt of this event.
    webhook_id: String,
    job_id: String,
    event_type: String,
    url: String,
    /// `pending`, `delivered` or `failed`.
    status: String,
    attempt_count: i64,
    next_attempt_at: Option<String>,
    last_status_code: Option<i32>,
    last_error: Option<String>,
    created_at: String,
    updated_at: String,
    attempts: Vec<AttemptData>,
}

impl DeliveryData {
    fn new(d: Delivery, attempts: Vec<Attempt>) -> Self {
        DeliveryData {
            webhook_id: d.event_id,
            next_attempt_at: d.next_attempt_at.as_ref().map(timestamp),
            created_at: timestamp(&d.created_at),
            updated_at: timestamp(&d.updated_at),
            id: d.id,
            job_id: d.job_id,
            event_type: d.event_type,
            url: d.url,
            status: d.status,
            attempt_count: d.attempts,
            last_status_code: d.last_status_code,
            last_error: d.last_error,
            attempts: attempts
                .into_iter()
                .map(|a| AttemptData {
                    attempt: a.attempt,
                    status_code: a.status_code,
                    error: a.error,
                    duration_ms: a.duration_ms,
                    created_at: timestamp(&a.created_at),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct DeliveriesQuery {
    job_id: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// The tenant's webhook deliveries, newest first, each with its attempts.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/deliveries",
    tag = "webhooks",
    params(("job_id" = Option<String>, Query, description = "Only this job's deliveries"), PageQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = Paged<DeliveryData>),
        (status = 422, description = "Bad `page` or `limit`", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn list_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page: Page = query.page.validate()?;
    let (rows, total) = webhooks::deliveries(
        &state.services,
        &who,
        query.job_id,
        page.offset(),
        page.limit,
    )
    .await?;
    let items: Vec<DeliveryData> = rows
        .into_iter()
        .map(|(d, a)| DeliveryData::new(d, a))
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}

/// Sends the event again (same `webhook-id`, so receivers can drop a
/// duplicate), with a fresh retry schedule.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/deliveries/{id}/redeliver",
    tag = "webhooks",
    params(("id" = String, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "Queued for delivery", body = Envelope<DeliveryData>),
        (status = 404, description = "No such delivery in this tenant", body = Problem, content_type = "application/problem+json"),
    ),
)]
pub async fn redeliver(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let delivery = webhooks::redeliver(&state.services, &who, id.into_inner()).await?;
    Ok(envelope::data(
        &req,
        StatusCode::ACCEPTED,
        DeliveryData::new(delivery, Vec::new()),
    ))
}

/// The tenant's webhook signing secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookSecretData {
    /// `whsec_<base64>`: the key of the HMAC in `webhook-signature`
    /// (Standard Webhooks).
    secret: String,
}

/// The secret this tenant's webhooks are signed with.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/secret",
    tag = "webhooks",
    description = "The secret that signs this tenant's webhooks (its own; no other tenant's \
        receivers accept what it signs).",
    responses(
        (status = 200, description = "The tenant's current secret", body = Envelope<WebhookSecretData>),
    ),
)]
pub async fn get_webhook_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
) -> Result<HttpResponse, ApiError> {
    let secret = webhooks::secret(&state.services, &who).await?;
    Ok(envelope::ok(&req, WebhookSecretData { secret }))
}

/// Replaces the tenant's secret; for 24 h deliveries carry signatures under
/// both, so receivers can switch over.
#[utoipa::path(
    post,
    path = "/api/v1/webhooks/secret/rotate",
    tag = "webhooks",
    description = "Makes a new secret for this tenant's webhooks and answers it. For 24 hours \
        every delivery is signed with the new and the old secret (two signatures in \
        `webhook-signature`), so receivers can move to the new one without losing events.",
    responses(
        (status = 200, description = "The new secret", body = Envelope<WebhookSecretData>),
    ),
)]
pub async fn rotate_webhook_secret(
    req: HttpRequest,
    state: web::Data<AppState>,
    who: Who,
) -> Result<HttpResponse, ApiError> {
    let secret = webhooks::rotate_secret(&state.services, &who).await?;
    Ok(envelope::ok(&req, WebhookSecretData { secret }))
}
