//! Failed authentications per client address (`AUTH_FAILURE_LIMIT` per
//! minute, GCRA). Past the limit every request from that address that
//! carries a key is a 429 with `Retry-After`, before the key is hashed or
//! looked up: a guesser cannot go faster by changing keys (each key has a
//! rate-limit bucket of its own), and guessing costs the server nothing.
//! IPv6 addresses count per /64, which one host usually holds whole.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses forgotten once their budget is full again, every this many failures.
const PRUNE_EVERY: u64 = 1024;

pub struct AuthFailures {
    /// One failure's worth of budget comes back after this; `None`: no limit.
    period: Option<Duration>,
    /// How far ahead of now an address's schedule may run (the burst).
    tolerance: Duration,
    /// Theoretical arrival time of each address's next failure.
    next: Mutex<HashMap<IpAddr, Instant>>,
    failures: AtomicU64,
}

impl AuthFailures {
    /// `limit` failures per `window`; 0 turns the limit off.
    pub fn new(limit: u32, window: Duration) -> AuthFailures {
        let period = (limit > 0).then(|| window / limit);
        AuthFailures {
            period,
            tolerance: period.unwrap_or_default() * limit.saturating_sub(1),
            next: Mutex::new(HashMap::new()),
            failures: AtomicU64::new(0),
        }
    }

    /// Seconds until `ip` may try a key again; `None` when it may now.
    pub fn blocked(&self, ip: IpAddr) -> Option<u64> {
        self.period?;
        let now = Instant::now();
        let next = self.next.lock().ok()?.get(&bucket(ip)).copied()?;
        let allowed_at = next.checked_sub(self.tolerance)?;
        (allowed_at > now).then(|| (allowed_at - now).as_secs_f64().ceil().max(1.0) as u64)
    }

    /// Counts a failed authentication from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        let Some(period) = self.period else {
            return;
        };
        let now = Instant::now();
        let Ok(mut next) = self.next.lock() else {
            return;
        };
        let entry = next.entry(bucket(ip)).or_insert(now);
        *entry = (*entry).max(now) + period;
        if self.failures.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            next.retain(|_, at| *at > now);
        }
    }
}

/// The unit counted: an IPv4 address, or an IPv6 /64.
fn bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_burst_then_waits() {
        let limits = AuthFailures::new(3, Duration::from_secs(60));
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(limits.blocked(ip), None);
            limits.failed(ip);
        }
        let wait = limits.blocked(ip).expect("blocked after 3");
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(limits.blocked("203.0.113.6".parse().unwrap()), None);
        // One /64 is one client.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        for _ in 0..3 {
            limits.failed(a);
        }
        assert!(limits
            .blocked("2001:db8:1:2:ffff::9".parse().unwrap())
            .is_some());
        assert!(limits.blocked("2001:db8:1:3::1".parse().unwrap()).is_none());
        // Off.
        let off = AuthFailures::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            off.failed(ip);
        }
        assert_eq!(off.blocked(ip), None);
    }
}
