//! The OTLP retry rules: which answers are retried, how long to wait, and the
//! backoff between attempts.
//!
//! From the OTLP specification: gRPC codes CANCELLED, DEADLINE_EXCEEDED, ABORTED,
//! OUT_OF_RANGE, UNAVAILABLE and DATA_LOSS are retried; RESOURCE_EXHAUSTED only
//! when the server attached a `google.rpc.RetryInfo`, whose delay is then
//! honoured. HTTP 429, 502, 503 and 504 are retried, honouring `Retry-After`;
//! other 4xx/5xx are not. A dropped connection or a timed-out request is retried.
//! A success carrying `partial_success` is final: its rejected spans are counted,
//! never retried.

use std::time::{Duration, SystemTime};

use tonic::Code;
use tonic_types::StatusExt;

/// What to do after one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accepted; `rejected` spans were refused (partial success), not to be retried.
    Accepted {
        /// Spans the backend rejected.
        rejected: u64,
        /// Its explanation.
        message: String,
    },
    /// Try again, after `after` if the server said how long.
    Retry {
        /// The server's requested delay (`Retry-After`, `RetryInfo`).
        after: Option<Duration>,
        /// What happened, for logs.
        why: String,
    },
    /// Permanent failure: do not retry.
    Fail(String),
}

/// Backoff between retries: exponential with "equal jitter" (a random delay in
/// the upper half of the exponential step), capped, within a total time budget.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry (before jitter).
    pub initial_backoff: Duration,
    /// The largest delay between attempts (before jitter).
    pub max_backoff: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Give up (and count the spans as failed) once this much time has passed
    /// since the first attempt. Server-requested delays that would run past it
    /// end the retries at once.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(5),
            multiplier: 2.0,
            max_elapsed: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        RetryPolicy { max_elapsed: Duration::ZERO, ..Self::default() }
    }

    /// The delay before retry number `retry` (0-based), with `unit` a random
    /// number in [0, 1) for the jitter.
    pub(crate) fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let exp = self.multiplier.max(1.0).powi(retry.min(64) as i32);
        let base = self.initial_backoff.as_secs_f64() * exp;
        let base = base.min(self.max_backoff.as_secs_f64()).max(0.0);
        Duration::from_secs_f64(base / 2.0 + base / 2.0 * unit.clamp(0.0, 1.0))
    }
}

/// The verdict on a gRPC error status.
pub(crate) fn grpc_verdict(status: &tonic::Status) -> Verdict {
    let why = format!("gRPC {:?}: {}", status.code(), status.message());
    match status.code() {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => {
            let after = status.get_details_retry_info().and_then(|r| r.retry_delay);
            Verdict::Retry { after, why }
        }
        Code::ResourceExhausted => match status.get_details_retry_info().and_then(|r| r.retry_delay) {
            Some(d) => Verdict::Retry { after: Some(d), why },
            None => Verdict::Fail(format!("{why} (no RetryInfo: not retried)")),
        },
        _ => Verdict::Fail(why),
    }
}

/// The verdict on a non-success HTTP status.
pub(crate) fn http_verdict(status: http::StatusCode, retry_after: Option<&str>, body: &str) -> Verdict {
    let why = format!("HTTP {}: {}", status.as_u16(), body.chars().take(200).collect::<String>());
    match status.as_u16() {
        429 | 502 | 503 | 504 => {
            Verdict::Retry { after: retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())), why }
        }
        _ => Verdict::Fail(why),
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date. Unparsable values
/// are ignored (the backoff applies).
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_with_retry(code: Code, delay: Duration) -> tonic::Status {
        let details = tonic_types::ErrorDetails::with_retry_info(Some(delay));
        <tonic::Status as StatusExt>::with_error_details(code, "busy", details)
    }

    #[test]
    fn grpc_retryable_codes() {
        for code in [
            Code::Cancelled,
            Code::DeadlineExceeded,
            Code::Aborted,
            Code::OutOfRange,
            Code::Unavailable,
            Code::DataLoss,
        ] {
            assert!(
                matches!(grpc_verdict(&tonic::Status::new(code, "x")), Verdict::Retry { after: None, .. }),
                "{code:?}"
            );
        }
        for code in [
            Code::Unknown,
            Code::InvalidArgument,
            Code::NotFound,
            Code::AlreadyExists,
            Code::PermissionDenied,
            Code::FailedPrecondition,
            Code::Unimplemented,
            Code::Internal,
            Code::Unauthenticated,
            Code::ResourceExhausted,
        ] {
            assert!(matches!(grpc_verdict(&tonic::Status::new(code, "x")), Verdict::Fail(_)), "{code:?}");
        }
    }

    #[test]
    fn resource_exhausted_needs_retry_info_and_its_delay_is_used() {
        let s = status_with_retry(Code::ResourceExhausted, Duration::from_millis(1500));
        assert_eq!(
            grpc_verdict(&s),
            Verdict::Retry { after: Some(Duration::from_millis(1500)), why: "gRPC ResourceExhausted: busy".into() }
        );
        let s = status_with_retry(Code::Unavailable, Duration::from_secs(2));
        assert!(matches!(grpc_verdict(&s), Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(2)));
    }

    #[test]
    fn http_statuses() {
        for code in [429u16, 502, 503, 504] {
            let st = http::StatusCode::from_u16(code).unwrap();
            assert!(
                matches!(http_verdict(st, Some("3"), ""), Verdict::Retry { after: Some(d), .. } if d == Duration::from_secs(3))
            );
            assert!(matches!(http_verdict(st, None, ""), Verdict::Retry { after: None, .. }));
            assert!(matches!(http_verdict(st, Some("soon"), ""), Verdict::Retry { after: None, .. }));
        }
        for code in [400u16, 401, 403, 404, 405, 408, 413, 415, 500, 501] {
            let st = http::StatusCode::from_u16(code).unwrap();
            assert!(matches!(http_verdict(st, Some("1"), "bad"), Verdict::Fail(_)), "{code}");
        }
    }

    #[test]
    fn retry_after_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 12 ", now), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("", now), None);
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            multiplier: 2.0,
            max_elapsed: Duration::from_secs(10),
        };
        assert_eq!(p.backoff(0, 0.0), Duration::from_millis(50));
        assert_eq!(p.backoff(0, 1.0), Duration::from_millis(100));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(400));
        assert_eq!(p.backoff(10, 1.0), Duration::from_millis(1000));
        assert_eq!(p.backoff(10, 0.0), Duration::from_millis(500));
        assert_eq!(p.backoff(u32::MAX, 0.5), Duration::from_millis(750));
    }
}
