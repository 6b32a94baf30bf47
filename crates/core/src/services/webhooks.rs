//! A tenant's webhook deliveries and its signing secret.

use super::{audit, Requester, Services};
use crate::db::models::webhook::{self, Delivery, DeliveryWithAttempts};
use crate::db::models::webhook_secret;
use crate::db::{self};
use crate::error::ServiceError;
use crate::webhooks::signing::WebhookSecret;

/// How long the secret a rotation replaces still signs deliveries.
pub const PREVIOUS_SECRET_HOURS: i64 = 24;

/// A page of the tenant's deliveries (of one job, when given), and the total.
pub async fn deliveries(
    services: &Services,
    who: &Requester,
    job_id: Option<String>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<DeliveryWithAttempts>, i64), ServiceError> {
    let (tenant, sight) = (who.tenant().clone(), who.sight());
    Ok(db::run(&services.pool, move |c| {
        webhook::list(c, &tenant, &sight, job_id.as_deref(), offset, limit)
    })
    .await?)
}

/// Queues a delivery again (same `webhook-id`) with a fresh retry schedule.
pub async fn redeliver(
    services: &Services,
    who: &Requester,
    id: String,
) -> Result<Delivery, ServiceError> {
    let tenant = who.tenant().clone();
    let delivery = db::run(&services.pool, move |c| webhook::redeliver(c, &tenant, &id))
        .await?
        .ok_or_else(|| ServiceError::NotFound("no such webhook delivery".into()))?;
    services.webhooks.do_send(crate::actors::webhooks::Wake);
    Ok(delivery)
}

/// The tenant's signing secret, made on first use.
pub async fn secret(services: &Services, who: &Requester) -> Result<String, ServiceError> {
    // It signs what receivers trust: not a viewer's to read.
    who.require(crate::domain::role::Role::Member)?;
    let tenant = who.tenant().clone();
    Ok(db::run(&services.pool, move |c| {
        webhook_secret::current(c, &tenant, WebhookSecret::generate)
    })
    .await?)
}

/// Replaces the tenant's secret; the old one keeps signing (as a second
/// signature) for `PREVIOUS_SECRET_HOURS`.
pub async fn rotate_secret(services: &Services, who: &Requester) -> Result<String, ServiceError> {
    who.require(crate::domain::role::Role::Member)?;
    let tenant = who.tenant().clone();
    let keep_until = db::now() + chrono::Duration::hours(PREVIOUS_SECRET_HOURS);
    let secret = db::run(&services.pool, move |c| {
        webhook_secret::rotate(
            c,
            &tenant,
            WebhookSecret::generate(),
            keep_until,
            WebhookSecret::generate,
        )
    })
    .await?;
    audit::record(
        services,
        who,
        "webhook.secret.rotate",
        who.tenant().as_str(),
    )
    .await;
    Ok(secret)
}
