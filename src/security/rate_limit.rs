//! Per-key rate limiting (GCRA via `governor`): `RATE_LIMIT_REQUESTS` per
//! `RATE_LIMIT_WINDOW`, as middleware on every authenticated route (REST,
//! OpenAI-compatible and MCP), with
//! `RateLimit-*` headers on every response and a 429 problem with
//! `Retry-After` when the budget is spent. Keys are told apart by their hash,
//! so a wrong key is limited too (no free guessing).

use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::auth::{presented_key, resolve};
use super::client::client_ip;
use super::keys::hash_key;
use crate::api::AppState;
use crate::error::ApiError;

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// One quota's limiter, keyed by key hash.
struct QuotaLimiter {
    limiter: Limiter,
    limit: u32,
    /// Time for one request's worth of budget to come back.
    period: Duration,
}

pub struct RateLimits {
    default: QuotaLimiter,
    /// Limiters of tenants with their own quota, by (requests, window secs).
    custom: std::sync::Mutex<std::collections::HashMap<(u32, u64), std::sync::Arc<QuotaLimiter>>>,
    checks: std::sync::atomic::AtomicU64,
}

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        limit: u32,
        remaining: u32,
        reset_secs: u64,
    },
    Limited {
        limit: u32,
        retry_after_secs: u64,
    },
}

impl RateLimits {
    pub fn new(requests: u32, window: Duration) -> RateLimits {
        RateLimits {
            default: QuotaLimiter::new(requests, window),
            custom: std::sync::Mutex::new(std::collections::HashMap::new()),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Checks one request of a key, under its tenant's own quota if it has one.
    pub fn check(&self, key_hash: &str, quota: Option<(u32, u64)>) -> Decision {
        // Now and then forget keys whose budget is full again, so random
        // keys cannot grow the tables without bound.
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prune = n % 4096 == 4095;
        let Some((requests, window)) = quota else {
            if prune {
                self.default.limiter.retain_recent();
            }
            return self.default.check(key_hash);
        };
        let limiter = match self.custom.lock() {
            Ok(mut custom) => custom
                .entry((requests, window))
                .or_insert_with(|| {
                    std::sync::Arc::new(QuotaLimiter::new(requests, Duration::from_secs(window)))
                })
                .clone(),
            Err(_) => return self.default.check(key_hash),
        };
        if prune {
            limiter.limiter.retain_recent();
        }
        limiter.check(key_hash)
    }
}

impl QuotaLimiter {
    fn new(requests: u32, window: Duration) -> QuotaLimiter {
        let requests = requests.max(1);
        let period = (window / requests).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        QuotaLimiter {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            limit: requests,
            period,
        }
    }

    fn check(&self, key_hash: &str) -> Decision {
        match self.limiter.check_key(&key_hash.to_owned()) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let used = self.limit.saturating_sub(remaining);
                Decision::Allowed {
                    limit: self.limit,
                    remaining,
                    reset_secs: (self.period * used).as_secs_f64().ceil() as u64,
                }
            }
            Err(not_until) => Decision::Limited {
                limit: self.limit,
                retry_after_secs: not_until
                    .wait_time_from(DefaultClock::default().now())
                    .as_secs_f64()
                    .ceil()
                    .max(1.0) as u64,
            },
        }
    }
}

fn set(res: &mut ServiceResponse<BoxBody>, name: &'static str, value: u64) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        res.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

/// A 429 problem carried as a response (so it gets its instance and
/// request id), with `Retry-After`.
fn too_many(
    req: ServiceRequest,
    detail: String,
    retry_after_secs: u64,
) -> ServiceResponse<BoxBody> {
    let (http_req, _) = req.into_parts();
    let mut res = ServiceResponse::new(
        http_req,
        actix_web::HttpResponse::from_error(ApiError::RateLimited(detail)),
    );
    set(&mut res, "retry-after", retry_after_secs);
    res
}

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let key = presented_key(req.request());
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let (Some(key), Some(state)) = (key, state) else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    // An address that failed too often is refused before its key costs a
    // hash and a lookup.
    let client = client_ip(req.request(), &state.services.settings.trusted_proxies);
    if let Some(retry_after_secs) = client.and_then(|ip| state.auth_failures.blocked(ip)) {
        let detail = format!(
            "too many failed authentications from this address; retry in {retry_after_secs} s"
        );
        return Ok(too_many(req, detail, retry_after_secs));
    }
    // Resolve the key once here; the `Caller` extractor reuses the result.
    let resolved = resolve(&state, &key).await?;
    let known = resolved.is_some();
    let quota = resolved.as_ref().and_then(|r| r.rate_limit);
    match resolved {
        Some(resolved) => {
            req.extensions_mut().insert(resolved);
        }
        // The extractor then refuses it without a second hash and lookup.
        None => {
            req.extensions_mut().insert(super::auth::UnknownKey);
        }
    }
    let counted = |res: ServiceResponse<BoxBody>| {
        if !known && res.status() == actix_web::http::StatusCode::UNAUTHORIZED {
            if let Some(ip) = client {
                state.auth_failures.failed(ip);
            }
        }
        res
    };
    match state.rate_limits.check(&hash_key(&key), quota) {
        Decision::Limited {
            limit,
            retry_after_secs,
        } => {
            let detail =
                format!("rate limit of {limit} requests exceeded; retry in {retry_after_secs} s");
            let mut res = too_many(req, detail, retry_after_secs);
            set(&mut res, "ratelimit-limit", u64::from(limit));
            set(&mut res, "ratelimit-remaining", 0);
            set(&mut res, "ratelimit-reset", retry_after_secs);
            Ok(res)
        }
        Decision::Allowed {
            limit,
            remaining,
            reset_secs,
        } => {
            let mut res = next.call(req).await?.map_into_boxed_body();
            set(&mut res, "ratelimit-limit", u64::from(limit));
            set(&mut res, "ratelimit-remaining", u64::from(remaining));
            set(&mut res, "ratelimit-reset", reset_secs);
            Ok(counted(res))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_burst_then_waits() {
        let limits = RateLimits::new(3, Duration::from_secs(60));
        for expected in [2, 1, 0] {
            match limits.check("k", None) {
                Decision::Allowed {
                    remaining, limit, ..
                } => {
                    assert_eq!((limit, remaining), (3, expected));
                }
                other => panic!("{other:?}"),
            }
        }
        match limits.check("k", None) {
            Decision::Limited {
                retry_after_secs, ..
            } => assert!((1..=20).contains(&retry_after_secs)),
            other => panic!("{other:?}"),
        }
        // Another key has its own budget.
        assert!(matches!(
            limits.check("other", None),
            Decision::Allowed { remaining: 2, .. }
        ));
        // A tenant quota is a budget of its own.
        assert!(matches!(
            limits.check("k", Some((10, 60))),
            Decision::Allowed {
                limit: 10,
                remaining: 9,
                ..
            }
        ));
    }
}
