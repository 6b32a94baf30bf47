//! Per-key rate limiting (GCRA via `governor`): `RATE_LIMIT_REQUESTS` per
//! `RATE_LIMIT_WINDOW`, under a tenant's own quota when it has one. Keys are
//! told apart by their hash, so a wrong key is limited too (no free
//! guessing). `api::limits` applies it to every authenticated route.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

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
