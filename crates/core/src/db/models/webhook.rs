//! The webhook outbox: one delivery per event (its `event_id` is the
//! `webhook-id` every attempt carries) and one row per attempt.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::TenantId;
use crate::db::schema::{webhook_attempts, webhook_deliveries};
use crate::db::{DbConnection, DbResult};

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
/// Retries exhausted.
pub const FAILED: &str = "failed";
/// The receiver answered 410 Gone: no more attempts to that URL.
pub const GONE: &str = "gone";

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
pub struct Delivery {
    pub id: String,
    pub tenant_id: String,
    pub job_id: String,
    pub event_id: String,
    pub event_type: String,
    pub url: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_attempts)]
pub struct Attempt {
    pub id: String,
    pub delivery_id: String,
    pub attempt: i64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    pub created_at: NaiveDateTime,
}

/// Queues the first attempt of a new event, due now.
pub fn enqueue(
    conn: &mut DbConnection,
    tenant_id: &str,
    job_id: &str,
    url: &str,
    event_type: &str,
    payload: &str,
) -> DbResult<Delivery> {
    let now = crate::db::now();
    let delivery = Delivery {
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: tenant_id.to_owned(),
        job_id: job_id.to_owned(),
        event_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        event_type: event_type.to_owned(),
        url: url.to_owned(),
        payload: payload.to_owned(),
        status: PENDING.into(),
        attempts: 0,
        next_attempt_at: Some(now),
        last_status_code: None,
        last_error: None,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(webhook_deliveries::table)
        .values(&delivery)
        .execute(conn)?;
    Ok(delivery)
}

/// Pending deliveries whose next attempt is due.
pub fn due(conn: &mut DbConnection, now: NaiveDateTime, limit: i64) -> DbResult<Vec<Delivery>> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::status.eq(PENDING))
        .filter(webhook_deliveries::next_attempt_at.le(now))
        .order(webhook_deliveries::next_attempt_at.asc())
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)?)
}

/// Takes up to `limit` due deliveries for one attempt each, pushing their
/// next attempt to `lease_until` (see `claim`). On PostgreSQL the due rows
/// are read `FOR UPDATE SKIP LOCKED`, so nodes polling together each take
/// different rows instead of racing for the same ones.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
    lease_until: NaiveDateTime,
) -> DbResult<Vec<Delivery>> {
    let DbConnection::Postgres(pg) = conn else {
        let mut claimed = Vec::new();
        for delivery in due(conn, now, limit)? {
            if claim(conn, &delivery, lease_until)? {
                claimed.push(delivery);
            }
        }
        return Ok(claimed);
    };
    pg.transaction(|pg| {
        let due: Vec<Delivery> = webhook_deliveries::table
            .filter(webhook_deliveries::status.eq(PENDING))
            .filter(webhook_deliveries::next_attempt_at.le(now))
            .order(webhook_deliveries::next_attempt_at.asc())
            .limit(limit)
            .select(Delivery::as_select())
            .for_update()
            .skip_locked()
            .load(pg)?;
        let ids: Vec<&str> = due.iter().map(|d| d.id.as_str()).collect();
        diesel::update(webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids)))
            .set(webhook_deliveries::next_attempt_at.eq(lease_until))
            .execute(pg)?;
        Ok(due)
    })
}

/// Takes a due delivery for one attempt by pushing its next attempt past the
/// attempt's own timeout; `false` if another worker took it first. A crash
/// mid-attempt makes it due again once the lease runs out.
pub fn claim(
    conn: &mut DbConnection,
    delivery: &Delivery,
    lease_until: NaiveDateTime,
) -> DbResult<bool> {
    let n = diesel::update(
        webhook_deliveries::table
            .find(&delivery.id)
            .filter(webhook_deliveries::status.eq(PENDING))
            .filter(webhook_deliveries::next_attempt_at.eq(delivery.next_attempt_at)),
    )
    .set(webhook_deliveries::next_attempt_at.eq(lease_until))
    .execute(conn)?;
    Ok(n == 1)
}

/// What an attempt came to, and what happens next.
#[derive(Debug, Clone)]
pub struct AttemptOutcome {
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// The delivery's new status.
    pub status: &'static str,
    /// When to try again (pending only).
    pub next_attempt_at: Option<NaiveDateTime>,
}

/// Records one attempt and moves the delivery on, in one transaction. A 410
/// also stops the tenant's other pending deliveries to the same URL.
pub fn record_attempt(
    conn: &mut DbConnection,
    delivery: &Delivery,
    outcome: &AttemptOutcome,
) -> DbResult<()> {
    crate::db::write_transaction(conn, |conn| {
        let now = crate::db::now();
        let attempt = Attempt {
            id: uuid::Uuid::now_v7().to_string(),
            delivery_id: delivery.id.clone(),
            attempt: delivery.attempts + 1,
            status_code: outcome.status_code,
            error: outcome.error.clone(),
            duration_ms: outcome.duration_ms,
            created_at: now,
        };
        diesel::insert_into(webhook_attempts::table)
            .values(&attempt)
            .execute(conn)?;
        diesel::update(webhook_deliveries::table.find(&delivery.id))
            .set((
                webhook_deliveries::status.eq(outcome.status),
                webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                webhook_deliveries::next_attempt_at.eq(outcome.next_attempt_at),
                webhook_deliveries::last_status_code.eq(outcome.status_code),
                webhook_deliveries::last_error.eq(&outcome.error),
                webhook_deliveries::updated_at.eq(now),
            ))
            .execute(conn)?;
        if outcome.status == GONE {
            diesel::update(
                webhook_deliveries::table
                    .filter(webhook_deliveries::tenant_id.eq(&delivery.tenant_id))
                    .filter(webhook_deliveries::url.eq(&delivery.url))
                    .filter(webhook_deliveries::status.eq(PENDING)),
            )
            .set((
                webhook_deliveries::status.eq(GONE),
                webhook_deliveries::next_attempt_at.eq(None::<NaiveDateTime>),
                webhook_deliveries::last_error.eq("the receiver answered 410 Gone for this URL"),
                webhook_deliveries::updated_at.eq(now),
            ))
            .execute(conn)?;
        }
        Ok(())
    })
}

/// A delivery and its attempts, oldest attempt first.
pub type DeliveryWithAttempts = (Delivery, Vec<Attempt>);

/// One page of the tenant's deliveries (optionally of one job), newest
/// first, with their attempts. Without `sees_all`, `sight` sees only the
/// deliveries of jobs in sessions it sees (a payload carries the answer).
pub fn list(
    conn: &mut DbConnection,
    tenant: &TenantId,
    sight: &super::session::Sight,
    job_id: Option<&str>,
    offset: i64,
    limit: i64,
) -> DbResult<(Vec<DeliveryWithAttempts>, i64)> {
    let mut count = webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant.as_str()))
        .into_boxed();
    let mut page = webhook_deliveries::table
        .filter(webhook_deliveries::tenant_id.eq(tenant.as_str()))
        .into_boxed();
    if !sight.sees_all {
        use crate::db::schema::{jobs, sessions};
        let seen = || {
            jobs::table
                .inner_join(sessions::table)
                .filter(jobs::tenant_id.eq(tenant.as_str().to_owned()))
                .filter(
                    sessions::private_to
                        .is_null()
                        .or(sessions::private_to.eq(sight.principal.clone())),
                )
                .select(jobs::id)
        };
        count = count.filter(webhook_deliveries::job_id.eq_any(seen()));
        page = page.filter(webhook_deliveries::job_id.eq_any(seen()));
    }
    if let Some(job_id) = job_id {
        count = count.filter(webhook_deliveries::job_id.eq(job_id.to_owned()));
        page = page.filter(webhook_deliveries::job_id.eq(job_id.to_owned()));
    }
    let total = count.count().get_result(conn)?;
    let deliveries: Vec<Delivery> = page
        .order((
            webhook_deliveries::created_at.desc(),
            webhook_deliveries::id.desc(),
        ))
        .offset(offset)
        .limit(limit)
        .select(Delivery::as_select())
        .load(conn)?;
    let ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    let attempts: Vec<Attempt> = webhook_attempts::table
        .filter(webhook_attempts::delivery_id.eq_any(&ids))
        .order((
            webhook_attempts::delivery_id.asc(),
            webhook_attempts::attempt.asc(),
        ))
        .select(Attempt::as_select())
        .load(conn)?;
    let rows = deliveries
        .into_iter()
        .map(|d| {
            let mine = attempts
                .iter()
                .filter(|a| a.delivery_id == d.id)
                .cloned()
                .collect();
            (d, mine)
        })
        .collect();
    Ok((rows, total))
}

/// Queues one more attempt of the same event (same `webhook-id`), due now.
pub fn redeliver(
    conn: &mut DbConnection,
    tenant: &TenantId,
    id: &str,
) -> DbResult<Option<Delivery>> {
    let now = crate::db::now();
    let n = diesel::update(
        webhook_deliveries::table
            .find(id)
            .filter(webhook_deliveries::tenant_id.eq(tenant.as_str())),
    )
    .set((
        webhook_deliveries::status.eq(PENDING),
        webhook_deliveries::next_attempt_at.eq(Some(now)),
        webhook_deliveries::updated_at.eq(now),
    ))
    .execute(conn)?;
    if n == 0 {
        return Ok(None);
    }
    Ok(webhook_deliveries::table
        .find(id)
        .select(Delivery::as_select())
        .first(conn)
        .optional()?)
}
