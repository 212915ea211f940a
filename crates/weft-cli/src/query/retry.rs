//! When `weft query` tries again: which failures are worth a retry, and how
//! long to wait — exponential backoff with full jitter, never less than the
//! server's `Retry-After`.
//!
//! Jitter spreads the retries of many clients that failed together (a server
//! restart) so they do not come back in one wave.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

/// How many times and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Failures in a row (without progress in between) before giving up.
    pub attempts: u32,
    /// Backoff of the first retry, before jitter.
    pub base: Duration,
    /// Longest backoff before jitter.
    pub cap: Duration,
    /// Longest `Retry-After` honoured (a broken server may ask for hours).
    pub max_retry_after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempts: 10,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

/// Whether an HTTP status is worth retrying: overload and server errors.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// A random number in `[0, n]` (std's per-process random hash keys: enough for
/// jitter, no crate needed).
fn random_up_to(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let mut h = RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish() % (n + 1)
}

impl Policy {
    /// The wait before retry number `failures` (1 for the first retry), given
    /// the server's `Retry-After` if any: a random time up to the exponential
    /// backoff, and at least the server's delay.
    pub fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.base.saturating_mul(1u32 << failures.saturating_sub(1).min(20)).min(self.cap);
        let jittered = Duration::from_nanos(random_up_to(exp.as_nanos() as u64));
        match retry_after {
            Some(ra) => ra.min(self.max_retry_after) + jittered / 4,
            None => jittered,
        }
    }
}

/// A `Retry-After` header value: delay seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate(v)?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO))
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn httpdate(v: &str) -> Option<SystemTime> {
    let rest = v.split_once(", ")?.1;
    let mut it = rest.split(' ');
    let (day, mon, year, time, zone) = (it.next()?, it.next()?, it.next()?, it.next()?, it.next()?);
    if zone != "GMT" || it.next().is_some() {
        return None;
    }
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let m = MONTHS.iter().position(|x| *x == mon)? + 1;
    humantime::parse_rfc3339(&format!("{year}-{m:02}-{day:0>2}T{time}Z")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_cap_and_stays_under_it() {
        let p = Policy { base: Duration::from_millis(100), cap: Duration::from_secs(1), ..Policy::default() };
        for failures in 1..40 {
            let ceiling = (Duration::from_millis(100) * 2u32.pow((failures - 1).min(10))).min(Duration::from_secs(1));
            for _ in 0..20 {
                assert!(p.delay(failures, None) <= ceiling, "{failures}");
            }
        }
        // Jitter: not always the same.
        let d: std::collections::HashSet<Duration> = (0..50).map(|_| p.delay(5, None)).collect();
        assert!(d.len() > 1);
    }

    #[test]
    fn retry_after_is_a_floor_and_is_capped() {
        let p = Policy::default();
        for _ in 0..20 {
            let d = p.delay(1, Some(Duration::from_secs(2)));
            assert!(d >= Duration::from_secs(2) && d < Duration::from_secs(3), "{d:?}");
        }
        assert!(p.delay(1, Some(Duration::from_secs(100_000))) < Duration::from_secs(130));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates_and_refuses_junk() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO), "a past date: now");
        let later = httpdate("Wed, 21 Oct 2099 07:28:00 GMT").unwrap();
        assert!(later > SystemTime::now());
        for junk in ["", "soon", "-1", "Wed, 21 Oct 2099 07:28:00 PST", "Wed, 32 Foo 2099 07:28:00 GMT", "1.5"] {
            assert_eq!(parse_retry_after(junk), None, "{junk:?}");
        }
        assert!(retryable_status(429) && retryable_status(503) && !retryable_status(400) && !retryable_status(404));
    }
}
