//! Failed authentications per client address (`AUTH_FAILURE_LIMIT` per
//! minute, GCRA). Past the limit every request from that address that
//! carries a key is a 429 with `Retry-After`, before the key is looked up:
//! a guesser cannot go faster by changing keys (each key has a rate-limit
//! bucket of its own), and guessing costs the server nothing.
//! IPv6 addresses count per /64, which one host usually holds whole.
//!
//! A locked address still serves the keys that authenticated from it
//! before (within a day, the last few per address): a client that shares
//! its address with a guesser (a NAT, a proxy that names no client) keeps
//! working, while the guesser's keys, right or wrong, wait. Behind a
//! trusted proxy the address is the `X-Forwarded-For` client
//! (`security::client`), so one client's guesses lock out that client only.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Addresses forgotten once their budget is full again, every this many failures.
const PRUNE_EVERY: u64 = 1024;
/// Keys remembered per address as having authenticated from it.
const KNOWN_KEYS_PER_ADDRESS: usize = 8;
/// How long a key that authenticated from an address stays known there.
const KNOWN_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

pub struct AuthFailures {
    /// One failure's worth of budget comes back after this; `None`: no limit.
    period: Option<Duration>,
    /// How far ahead of now an address's schedule may run (the burst).
    tolerance: Duration,
    /// Theoretical arrival time of each address's next failure.
    next: Mutex<HashMap<IpAddr, Instant>>,
    failures: AtomicU64,
    /// Hashes of the keys that authenticated from each address, with when
    /// they last did.
    known: Mutex<HashMap<IpAddr, Vec<(String, Instant)>>>,
    successes: AtomicU64,
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
            known: Mutex::new(HashMap::new()),
            successes: AtomicU64::new(0),
        }
    }

    /// Seconds until `ip` may try the key hashed `key_hash` again; `None`
    /// when it may now: the address is not locked, or the key is one that
    /// authenticated from it before.
    pub fn blocked(&self, ip: IpAddr, key_hash: &str) -> Option<u64> {
        let wait = self.lock_wait(ip)?;
        let now = Instant::now();
        let known = self.known.lock().ok().is_some_and(|known| {
            known.get(&bucket(ip)).is_some_and(|keys| {
                keys.iter()
                    .any(|(hash, at)| hash == key_hash && now.duration_since(*at) < KNOWN_KEY_TTL)
            })
        });
        (!known).then_some(wait)
    }

    /// Remembers that the key hashed `key_hash` authenticated from `ip`.
    pub fn succeeded(&self, ip: IpAddr, key_hash: &str) {
        if self.period.is_none() {
            return;
        }
        let now = Instant::now();
        let Ok(mut known) = self.known.lock() else {
            return;
        };
        let keys = known.entry(bucket(ip)).or_default();
        match keys.iter_mut().find(|(hash, _)| hash == key_hash) {
            Some(entry) => entry.1 = now,
            None => {
                if keys.len() >= KNOWN_KEYS_PER_ADDRESS {
                    // The least recently seen key makes room.
                    if let Some(oldest) = keys.iter().enumerate().min_by_key(|(_, k)| k.1) {
                        let i = oldest.0;
                        keys.swap_remove(i);
                    }
                }
                keys.push((key_hash.to_owned(), now));
            }
        }
        if self.successes.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            known.retain(|_, keys| {
                keys.retain(|(_, at)| now.duration_since(*at) < KNOWN_KEY_TTL);
                !keys.is_empty()
            });
        }
    }

    /// Seconds until `ip`'s failure budget allows a try; `None` when it does.
    fn lock_wait(&self, ip: IpAddr) -> Option<u64> {
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
            assert_eq!(limits.blocked(ip, "guess"), None);
            limits.failed(ip);
        }
        let wait = limits.blocked(ip, "guess").expect("blocked after 3");
        assert!((1..=20).contains(&wait), "{wait}");
        assert_eq!(
            limits.blocked("203.0.113.6".parse().unwrap(), "guess"),
            None
        );
        // One /64 is one client.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        for _ in 0..3 {
            limits.failed(a);
        }
        assert!(limits
            .blocked("2001:db8:1:2:ffff::9".parse().unwrap(), "guess")
            .is_some());
        assert!(limits
            .blocked("2001:db8:1:3::1".parse().unwrap(), "guess")
            .is_none());
        // Off.
        let off = AuthFailures::new(0, Duration::from_secs(60));
        for _ in 0..100 {
            off.failed(ip);
        }
        assert_eq!(off.blocked(ip, "guess"), None);
    }

    #[test]
    fn a_locked_address_still_serves_the_keys_that_worked_from_it() {
        let limits = AuthFailures::new(2, Duration::from_secs(60));
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        limits.succeeded(ip, "good");
        limits.failed(ip);
        limits.failed(ip);
        assert_eq!(limits.blocked(ip, "good"), None);
        assert!(limits.blocked(ip, "other-valid-key").is_some());
        // Known from one address says nothing of another.
        let other: IpAddr = "203.0.113.6".parse().unwrap();
        limits.failed(other);
        limits.failed(other);
        assert!(limits.blocked(other, "good").is_some());
        // Only the last few keys of an address are kept.
        for i in 0..KNOWN_KEYS_PER_ADDRESS {
            limits.succeeded(ip, &format!("k{i}"));
        }
        assert!(limits.blocked(ip, "good").is_some());
        assert_eq!(limits.blocked(ip, "k0"), None);
    }
}
