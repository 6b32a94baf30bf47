//! Webhook deliveries: each event with its attempts, and redelivery.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};

use super::envelope::{self, timestamp, Page, PageQuery};
use super::AppState;
use crate::db::models::webhook::{self, Attempt, Delivery};
use crate::error::ApiError;
use crate::security::auth::Caller;

#[derive(Debug, Serialize)]
struct AttemptData {
    attempt: i64,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i64,
    created_at: String,
}

#[derive(Debug, Serialize)]
struct DeliveryData {
    id: String,
    /// The `webhook-id` header: the same on every attempt of this event.
    webhook_id: String,
    job_id: String,
    event_type: String,
    url: String,
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

pub async fn list_deliveries(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<DeliveriesQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let page: Page = query.page.validate()?;
    let job_id = query.job_id;
    let (rows, total) = crate::db::run(&state.pool, move |c| {
        webhook::list(
            c,
            &caller.tenant,
            job_id.as_deref(),
            page.offset(),
            page.limit,
        )
    })
    .await?;
    let items: Vec<DeliveryData> = rows
        .into_iter()
        .map(|(d, a)| DeliveryData::new(d, a))
        .collect();
    Ok(envelope::page(&req, items, &page, total))
}

pub async fn redeliver(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let delivery = crate::db::run(&state.pool, move |c| {
        webhook::redeliver(c, &caller.tenant, &id)
    })
    .await?
    .ok_or_else(|| ApiError::NotFound("no such webhook delivery".into()))?;
    state.webhooks.do_send(crate::actors::webhooks::Wake);
    Ok(envelope::data(
        &req,
        StatusCode::ACCEPTED,
        DeliveryData::new(delivery, Vec::new()),
    ))
}
