//! Per-key rate limiting (GCRA via `governor`): `RATE_LIMIT_REQUESTS` per
//! `RATE_LIMIT_WINDOW`, as middleware on every authenticated route, with
//! `RateLimit-*` headers on every response and a 429 problem with
//! `Retry-After` when the budget is spent. Keys are told apart by their hash,
//! so a wrong key is limited too (no free guessing).

use std::num::NonZeroU32;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::auth::presented_key;
use super::keys::hash_key;
use crate::api::AppState;
use crate::error::ApiError;

type Limiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

pub struct RateLimits {
    limiter: Limiter,
    checks: std::sync::atomic::AtomicU64,
    limit: u32,
    /// Time for one request's worth of budget to come back.
    period: Duration,
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
        let requests = requests.max(1);
        let period = (window / requests).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(requests).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(burst))
            .allow_burst(burst);
        RateLimits {
            limiter: RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>(),
            checks: std::sync::atomic::AtomicU64::new(0),
            limit: requests,
            period,
        }
    }

    pub fn check(&self, key_hash: &str) -> Decision {
        // Now and then forget keys whose budget is full again, so random
        // keys cannot grow the table without bound.
        let n = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % 4096 == 4095 {
            self.limiter.retain_recent();
        }
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

pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let decision = match (
        presented_key(req.request()),
        req.app_data::<web::Data<AppState>>(),
    ) {
        (Some(key), Some(state)) => Some(state.rate_limits.check(&hash_key(&key))),
        _ => None,
    };
    match decision {
        None => Ok(next.call(req).await?.map_into_boxed_body()),
        Some(Decision::Limited {
            limit,
            retry_after_secs,
        }) => {
            let error = ApiError::RateLimited(format!(
                "rate limit of {limit} requests exceeded; retry in {retry_after_secs} s"
            ));
            // Carried as an error so the problem gets its instance and request id.
            let (http_req, _) = req.into_parts();
            let mut res =
                ServiceResponse::new(http_req, actix_web::HttpResponse::from_error(error));
            set(&mut res, "retry-after", retry_after_secs);
            set(&mut res, "ratelimit-limit", u64::from(limit));
            set(&mut res, "ratelimit-remaining", 0);
            set(&mut res, "ratelimit-reset", retry_after_secs);
            Ok(res)
        }
        Some(Decision::Allowed {
            limit,
            remaining,
            reset_secs,
        }) => {
            let mut res = next.call(req).await?.map_into_boxed_body();
            set(&mut res, "ratelimit-limit", u64::from(limit));
            set(&mut res, "ratelimit-remaining", u64::from(remaining));
            set(&mut res, "ratelimit-reset", reset_secs);
            Ok(res)
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
            match limits.check("k") {
                Decision::Allowed {
                    remaining, limit, ..
                } => {
                    assert_eq!((limit, remaining), (3, expected));
                }
                other => panic!("{other:?}"),
            }
        }
        match limits.check("k") {
            Decision::Limited {
                retry_after_secs, ..
            } => assert!((1..=20).contains(&retry_after_secs)),
            other => panic!("{other:?}"),
        }
        // Another key has its own budget.
        assert!(matches!(
            limits.check("other"),
            Decision::Allowed { remaining: 2, .. }
        ));
    }
}
