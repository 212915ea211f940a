//! Attribute keys and values: the typed data a span, event or link carries.
//!
//! Strings are `Cow<'static, str>` so that static names and keys — the common case
//! in instrumented code — cost no allocation and no copy.

use std::borrow::Cow;
use std::fmt;

/// A string that is either borrowed for `'static` or owned.
pub type Str = Cow<'static, str>;

/// An attribute key.
pub type Key = Str;

/// A homogeneous array attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// Booleans.
    Bool(Vec<bool>),
    /// Signed 64-bit integers.
    I64(Vec<i64>),
    /// 64-bit floats.
    F64(Vec<f64>),
    /// Strings.
    String(Vec<Str>),
}

/// A typed attribute value (the OpenTelemetry attribute model).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A boolean.
    Bool(bool),
    /// A signed 64-bit integer.
    I64(i64),
    /// A 64-bit float.
    F64(f64),
    /// A string.
    String(Str),
    /// An array of one primitive type.
    Array(Array),
}

impl Value {
    /// Bytes this value holds on the heap, for memory accounting.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Value::String(Cow::Owned(s)) => s.capacity(),
            Value::Array(Array::Bool(v)) => v.capacity(),
            Value::Array(Array::I64(v)) => v.capacity() * 8,
            Value::Array(Array::F64(v)) => v.capacity() * 8,
            Value::Array(Array::String(v)) => {
                v.capacity() * std::mem::size_of::<Str>()
                    + v.iter().map(|s| if let Cow::Owned(s) = s { s.capacity() } else { 0 }).sum::<usize>()
            }
            _ => 0,
        }
    }

    /// Shortens string values to at most `max` bytes (on a character boundary), as
    /// the attribute value length limit asks. Returns whether anything was cut.
    pub(crate) fn truncate(&mut self, max: usize) -> bool {
        fn cut(s: &mut Str, max: usize) -> bool {
            if s.len() <= max {
                return false;
            }
            let mut end = max;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            *s = Cow::Owned(s[..end].to_owned());
            true
        }
        match self {
            Value::String(s) => cut(s, max),
            Value::Array(Array::String(v)) => v.iter_mut().fold(false, |acc, s| cut(s, max) | acc),
            _ => false,
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Bool(v) => write!(f, "{v}"),
            Value::I64(v) => write!(f, "{v}"),
            Value::F64(v) => write!(f, "{v}"),
            Value::String(v) => write!(f, "{v:?}"),
            Value::Array(a) => match a {
                Array::Bool(v) => write!(f, "{v:?}"),
                Array::I64(v) => write!(f, "{v:?}"),
                Array::F64(v) => write!(f, "{v:?}"),
                Array::String(v) => write!(f, "{v:?}"),
            },
        }
    }
}

macro_rules! from_impls {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl From<$t> for Value {
            #[inline]
            fn from($v: $t) -> Self { $e }
        }
    )*};
}

from_impls! {
    bool => |v| Value::Bool(v);
    i64 => |v| Value::I64(v);
    i32 => |v| Value::I64(v.into());
    u32 => |v| Value::I64(v.into());
    u16 => |v| Value::I64(v.into());
    u8 => |v| Value::I64(v.into());
    i16 => |v| Value::I64(v.into());
    i8 => |v| Value::I64(v.into());
    f64 => |v| Value::F64(v);
    f32 => |v| Value::F64(v.into());
    &'static str => |v| Value::String(Cow::Borrowed(v));
    String => |v| Value::String(Cow::Owned(v));
    Str => |v| Value::String(v);
    Vec<bool> => |v| Value::Array(Array::Bool(v));
    Vec<i64> => |v| Value::Array(Array::I64(v));
    Vec<f64> => |v| Value::Array(Array::F64(v));
    Vec<Str> => |v| Value::Array(Array::String(v));
    Vec<&'static str> => |v| Value::Array(Array::String(v.into_iter().map(Cow::Borrowed).collect()));
    Vec<String> => |v| Value::Array(Array::String(v.into_iter().map(Cow::Owned).collect()));
}

/// `u64` and `usize` values above `i64::MAX` saturate, since OTLP has no unsigned type.
impl From<u64> for Value {
    #[inline]
    fn from(v: u64) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<usize> for Value {
    #[inline]
    fn from(v: usize) -> Self {
        Value::I64(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

/// A key and its value.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyValue {
    /// The attribute name.
    pub key: Key,
    /// The attribute value.
    pub value: Value,
}

impl KeyValue {
    /// Builds a key-value pair.
    #[inline]
    pub fn new(key: impl Into<Key>, value: impl Into<Value>) -> Self {
        KeyValue { key: key.into(), value: value.into() }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        let k = if let Cow::Owned(s) = &self.key { s.capacity() } else { 0 };
        k + self.value.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let mut v = Value::from("héllo".to_string());
        assert!(v.truncate(2));
        assert_eq!(v, Value::from("h"));
        let mut a = Value::from(vec!["abc", "de"]);
        assert!(a.truncate(2));
        assert_eq!(a, Value::from(vec!["ab", "de"]));
        let mut n = Value::from(5i64);
        assert!(!n.truncate(0));
    }

    #[test]
    fn unsigned_saturates() {
        assert_eq!(Value::from(u64::MAX), Value::I64(i64::MAX));
    }
}
