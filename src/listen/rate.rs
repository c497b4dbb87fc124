//! The responder's rate limit: a token bucket per source address, in a bounded table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

/// The most source addresses tracked at once; beyond it, new sources wait for room.
const SOURCES_CAP: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Replies per second per source, with bursts of twice that.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    sources: HashMap<IpAddr, Bucket>,
}

impl Limiter {
    pub fn new(per_second: u32) -> Limiter {
        let rate = f64::from(per_second.max(1));
        Limiter {
            rate,
            burst: rate * 2.0,
            sources: HashMap::new(),
        }
    }

    /// Whether `ip` may have a reply now; takes one token when it may.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.sources.contains_key(&ip) && self.sources.len() >= SOURCES_CAP {
            // Sources whose bucket has refilled are indistinguishable from new ones: forget them.
            let (rate, burst) = (self.rate, self.burst);
            self.sources.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * rate < burst
            });
            if self.sources.len() >= SOURCES_CAP {
                return false;
            }
        }
        let burst = self.burst;
        let b = self.sources.entry(ip).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_cut_and_refills_with_time() {
        let mut l = Limiter::new(5);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        let allowed = (0..50).filter(|_| l.allow(a, t0)).count();
        assert_eq!(allowed, 10, "a burst of twice the rate");
        assert!(l.allow(b, t0), "another source has its own bucket");
        assert!(!l.allow(a, t0));
        let later = t0 + Duration::from_secs(1);
        let refilled = (0..50).filter(|_| l.allow(a, later)).count();
        assert_eq!(refilled, 5, "one second refills the rate");
    }

    #[test]
    fn the_table_of_sources_is_bounded() {
        let mut l = Limiter::new(1);
        let t0 = Instant::now();
        for i in 0..SOURCES_CAP as u32 {
            assert!(l.allow(IpAddr::from(i.to_be_bytes()), t0));
        }
        let newcomer: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(
            !l.allow(newcomer, t0),
            "no room while every bucket is in use"
        );
        assert!(l.sources.len() <= SOURCES_CAP);
        assert!(
            l.allow(newcomer, t0 + Duration::from_secs(5)),
            "refilled buckets are forgotten"
        );
        assert!(l.sources.len() <= SOURCES_CAP);
    }
}
