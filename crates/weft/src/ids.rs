//! Trace and span identifiers and trace flags, as W3C Trace Context defines them.
//!
//! IDs are plain integers internally (cheap to copy and compare on the hot path) and
//! convert to and from the big-endian byte arrays and lowercase hex strings that
//! OTLP and `traceparent` use.

use std::fmt;

use crate::error::ParseError;

/// A 16-byte trace identifier. All zeros is invalid.
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId(u128);

impl TraceId {
    /// The invalid, all-zero trace ID.
    pub const INVALID: TraceId = TraceId(0);

    /// Builds a trace ID from its integer form (big-endian byte order).
    #[inline]
    pub const fn from_u128(v: u128) -> Self {
        TraceId(v)
    }
    /// The integer form.
    #[inline]
    pub const fn to_u128(self) -> u128 {
        self.0
    }
    /// Builds a trace ID from its 16 wire bytes.
    #[inline]
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        TraceId(u128::from_be_bytes(b))
    }
    /// The 16 wire bytes.
    #[inline]
    pub const fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
    /// Whether this ID is not all zeros.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }
    /// The rightmost 56 bits, which W3C Trace Context level 2 requires to be random
    /// and which consistent probability sampling compares against its threshold.
    #[inline]
    pub const fn randomness(self) -> u64 {
        (self.0 as u64) & crate::sampler::threshold::MAX_RANDOMNESS
    }
    /// Parses 32 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Self, ParseError> {
        parse_hex::<16>(s, "trace id").map(Self::from_bytes)
    }
}

/// An 8-byte span identifier. All zeros is invalid (and means "no parent").
#[derive(Copy, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(u64);

impl SpanId {
    /// The invalid, all-zero span ID.
    pub const INVALID: SpanId = SpanId(0);

    /// Builds a span ID from its integer form.
    #[inline]
    pub const fn from_u64(v: u64) -> Self {
        SpanId(v)
    }
    /// The integer form.
    #[inline]
    pub const fn to_u64(self) -> u64 {
        self.0
    }
    /// Builds a span ID from its 8 wire bytes.
    #[inline]
    pub const fn from_bytes(b: [u8; 8]) -> Self {
        SpanId(u64::from_be_bytes(b))
    }
    /// The 8 wire bytes.
    #[inline]
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
    /// Whether this ID is not all zeros.
    #[inline]
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }
    /// Parses 16 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Self, ParseError> {
        parse_hex::<8>(s, "span id").map(Self::from_bytes)
    }
}

/// The W3C trace flags byte.
#[derive(Copy, Clone, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The sampled flag: the caller may have recorded this trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// The W3C level-2 "random" flag: the trace ID's rightmost 56 bits are random.
    pub const RANDOM: TraceFlags = TraceFlags(0x02);
    /// No flags set.
    pub const NONE: TraceFlags = TraceFlags(0);

    /// Builds flags from the wire byte.
    #[inline]
    pub const fn new(v: u8) -> Self {
        TraceFlags(v)
    }
    /// The wire byte.
    #[inline]
    pub const fn to_u8(self) -> u8 {
        self.0
    }
    /// Whether the sampled flag is set.
    #[inline]
    pub const fn is_sampled(self) -> bool {
        self.0 & 1 != 0
    }
    /// Whether the random flag is set.
    #[inline]
    pub const fn is_random(self) -> bool {
        self.0 & 2 != 0
    }
    /// These flags with `other`'s bits added.
    #[inline]
    pub const fn with(self, other: TraceFlags) -> Self {
        TraceFlags(self.0 | other.0)
    }
}

fn parse_hex<const N: usize>(s: &str, what: &'static str) -> Result<[u8; N], ParseError> {
    let b = s.as_bytes();
    if b.len() != N * 2 {
        return Err(ParseError::new(what, format!("expected {} hex characters, got {}", N * 2, b.len())));
    }
    let mut out = [0u8; N];
    for (i, pair) in b.chunks_exact(2).enumerate() {
        let hi =
            hex_val(pair[0]).ok_or_else(|| ParseError::new(what, format!("invalid hex character at {}", i * 2)))?;
        let lo =
            hex_val(pair[1]).ok_or_else(|| ParseError::new(what, format!("invalid hex character at {}", i * 2 + 1)))?;
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

pub(crate) fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}
impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({:032x})", self.0)
    }
}
impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}
impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({:016x})", self.0)
    }
}
impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let t = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(t.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.to_bytes()[0], 0x4b);
        let s = SpanId::from_hex("00F067AA0BA902B7").unwrap();
        assert_eq!(s.to_string(), "00f067aa0ba902b7");
    }

    #[test]
    fn malformed_hex_is_an_error_not_a_panic() {
        for bad in
            ["", "xyz", "4bf92f3577b34da6a3ce929d0e0e473", "4bf92f3577b34da6a3ce929d0e0e473g", "é€€€€€€€€€€€€€€€"]
        {
            assert!(TraceId::from_hex(bad).is_err(), "{bad}");
            assert!(SpanId::from_hex(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn randomness_is_the_low_56_bits() {
        let t = TraceId::from_u128(u128::MAX);
        assert_eq!(t.randomness(), (1u64 << 56) - 1);
    }
}
