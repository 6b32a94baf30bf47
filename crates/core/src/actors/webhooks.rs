//! The webhook dispatcher: drains the persisted outbox. Each due delivery is
//! claimed (a lease in the database, so a crash mid-attempt retries it),
//! re-checked against internal addresses, signed, POSTed without following
//! redirects, and its attempt recorded. Failures retry on the configured
//! schedule with jitter; a 410 stops retries for that URL.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, WrapFuture};
use rand::Rng;

use crate::config::WebhookSettings;
use crate::db::models::webhook::{self, AttemptOutcome, Delivery};
use crate::db::models::{webhook_secret, TenantId};
use crate::db::{self, DbPool};
use crate::webhooks::signing::WebhookSecret;
use crate::webhooks::ssrf;

/// Attempts in flight at once.
const MAX_IN_FLIGHT: usize = 16;
/// How often expired idempotency keys are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Look for due deliveries now (a job just finished).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wake;

pub struct WebhookDispatcher {
    settings: Arc<WebhookSettings>,
    pool: DbPool,
    in_flight: HashSet<String>,
    polling: bool,
    last_purge: Instant,
}

impl WebhookDispatcher {
    pub fn new(settings: WebhookSettings, pool: DbPool) -> Self {
        WebhookDispatcher {
            settings: Arc::new(settings),
            pool,
            in_flight: HashSet::new(),
            polling: false,
            last_purge: Instant::now(),
        }
    }

    fn poll(&mut self, ctx: &mut Context<Self>) {
        if self.polling || self.in_flight.len() >= MAX_IN_FLIGHT {
            return;
        }
        self.polling = true;
        let pool = self.pool.clone();
        let limit = i64::try_from(MAX_IN_FLIGHT - self.in_flight.len()).unwrap_or(1);
        let purge = self.last_purge.elapsed() >= PURGE_EVERY;
        // A claimed delivery is due again if its attempt never ends (the
        // process died mid-attempt).
        let lease = chrono::Duration::from_std(self.settings.timeout + Duration::from_secs(30))
            .unwrap_or_else(|_| chrono::Duration::minutes(1));
        if purge {
            self.last_purge = Instant::now();
        }
        ctx.spawn(
            async move {
                db::run(&pool, move |c| {
                    if purge {
                        let day_ago = db::now() - chrono::Duration::hours(24);
                        db::models::idempotency::purge_expired(c, day_ago)?;
                    }
                    let now = db::now();
                    webhook::claim_due(c, now, limit, now + lease)
                })
                .await
            }
            .into_actor(self)
            .map(|due, act, ctx| {
                act.polling = false;
                match due {
                    Ok(due) => {
                        for delivery in due {
                            act.start(delivery, ctx);
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot read the webhook outbox"),
                }
            }),
        );
    }

    fn start(&mut self, delivery: Delivery, ctx: &mut Context<Self>) {
        if !self.in_flight.insert(delivery.id.clone()) {
            return;
        }
        let id = delivery.id.clone();
        let attempt = Attempt {
            settings: self.settings.clone(),
            pool: self.pool.clone(),
        };
        ctx.spawn(
            async move { attempt.run(delivery).await }
                .into_actor(self)
                .map(move |(), act, ctx| {
                    act.in_flight.remove(&id);
                    // More may be due (or this one's retry is due at once).
                    act.poll(ctx);
                }),
        );
    }
}

impl Actor for WebhookDispatcher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let every = self.settings.poll_interval;
        ctx.run_interval(every, |act, ctx| act.poll(ctx));
        self.poll(ctx);
    }
}

impl Handler<Wake> for WebhookDispatcher {
    type Result = ();

    fn handle(&mut self, _: Wake, ctx: &mut Context<Self>) {
        self.poll(ctx);
    }
}

/// One attempt of a delivery the poll claimed, off the actor.
struct Attempt {
    settings: Arc<WebhookSettings>,
    pool: DbPool,
}

impl Attempt {
    async fn run(self, delivery: Delivery) {
        let started = Instant::now();
        let (status_code, error) = self.send(&delivery).await;
        let outcome = self.outcome(&delivery, status_code, error, started.elapsed());
        tracing::info!(
            delivery = %delivery.id,
            job = %delivery.job_id,
            attempt = delivery.attempts + 1,
            status = ?outcome.status_code,
            result = outcome.status,
            "webhook attempt"
        );
        crate::metrics::webhook_attempt(outcome.status);
        let recorded = delivery.clone();
        if let Err(e) = db::run(&self.pool, move |c| {
            webhook::record_attempt(c, &recorded, &outcome)
        })
        .await
        {
            tracing::error!(error = %e, "cannot record a webhook attempt");
        }
    }

    /// POSTs the signed event; the response status, or why there was none.
    async fn send(&self, delivery: &Delivery) -> (Option<i32>, Option<String>) {
        let checked = match ssrf::check(&delivery.url, &self.settings.allowed_hosts).await {
            Ok(checked) => checked,
            Err(refused) => return (None, Some(refused.to_string())),
        };
        // Never through an environment proxy: it would resolve the host
        // again and reach whatever that answer says, undoing the check.
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(self.settings.timeout)
            .resolve_to_addrs(&checked.host, &checked.addrs)
            .user_agent(concat!("claude-code-api/", env!("CARGO_PKG_VERSION")))
            .build();
        let client = match client {
            Ok(client) => client,
            Err(e) => return (None, Some(format!("cannot build the HTTP client: {e}"))),
        };
        let signature = match self.signature(delivery).await {
            Ok(signature) => signature,
            Err(e) => return (None, Some(e)),
        };
        let (timestamp, signature) = signature;
        let response = client
            .post(checked.url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        match response {
            Ok(res) => {
                let status = i32::from(res.status().as_u16());
                let error = (!res.status().is_success())
                    .then(|| format!("the receiver answered {}", res.status()));
                (Some(status), error)
            }
            Err(e) if e.is_timeout() => (
                None,
                Some(format!("timed out after {:?}", self.settings.timeout)),
            ),
            Err(e) => (None, Some(format!("request failed: {e}"))),
        }
    }

    /// `(timestamp, webhook-signature)`: signed with the tenant's secret,
    /// and after a rotation with the previous one too while it is honoured
    /// (space-separated, as Standard Webhooks verifiers expect).
    async fn signature(&self, delivery: &Delivery) -> Result<(i64, String), String> {
        let tenant = TenantId(delivery.tenant_id.clone());
        let secrets = db::run(&self.pool, move |c| {
            webhook_secret::signing(c, &tenant, db::now(), WebhookSecret::generate)
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "cannot read a tenant's webhook secret");
            "the signing secret could not be read".to_owned()
        })?;
        let timestamp = chrono::Utc::now().timestamp();
        let mut signatures = Vec::new();
        for text in secrets {
            match WebhookSecret::parse(&text) {
                Ok(secret) => {
                    signatures.push(secret.sign(&delivery.event_id, timestamp, &delivery.payload))
                }
                Err(e) => tracing::error!(error = %e, "a stored webhook secret does not parse"),
            }
        }
        if signatures.is_empty() {
            return Err("no usable signing secret".into());
        }
        Ok((timestamp, signatures.join(" ")))
    }

    fn outcome(
        &self,
        delivery: &Delivery,
        status_code: Option<i32>,
        error: Option<String>,
        took: Duration,
    ) -> AttemptOutcome {
        let duration_ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
        let success = status_code.is_some_and(|s| (200..300).contains(&s));
        let (status, next_attempt_at) = if success {
            (webhook::DELIVERED, None)
        } else if status_code == Some(410) {
            (webhook::GONE, None)
        } else {
            match retry_delay(&self.settings.retry_schedule, delivery.attempts + 1) {
                Some(delay) => (
                    webhook::PENDING,
                    Some(db::now() + chrono::Duration::from_std(delay).unwrap_or_default()),
                ),
                None => (webhook::FAILED, None),
            }
        };
        AttemptOutcome {
            status_code,
            error,
            duration_ms,
            status,
            next_attempt_at,
        }
    }
}

/// The wait after the `attempts_made`-th failed attempt, with up to +20 %
/// jitter (never less, so the schedule's total is a floor); `None` when the
/// schedule is used up.
pub fn retry_delay(schedule: &[Duration], attempts_made: i64) -> Option<Duration> {
    let index = usize::try_from(attempts_made - 1).ok()?;
    let base = *schedule.get(index)?;
    let jitter = rand::rng().random_range(0.0..0.2);
    Some(base.mul_f64(1.0 + jitter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_follow_the_schedule_then_stop() {
        let schedule = [Duration::from_secs(5), Duration::from_secs(30)];
        let first = retry_delay(&schedule, 1).unwrap();
        assert!(first >= Duration::from_secs(5) && first <= Duration::from_secs(6));
        let second = retry_delay(&schedule, 2).unwrap();
        assert!(second >= Duration::from_secs(30) && second <= Duration::from_secs(36));
        assert_eq!(retry_delay(&schedule, 3), None);
    }
}
