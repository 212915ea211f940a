//! Tag names and values, for query builders and autocompletion: which
//! attribute keys the store holds (per scope), and which values one tag takes.
//!
//! Names come from each block's `meta.json` (keys listed when the block was
//! written, up to [`crate::block::MAX_TAG_KEYS`] per scope) and from the spans
//! not yet sealed. Values are found by reading: the unsealed spans first, then
//! blocks newest first, one column at a time, until enough distinct values are
//! found, the byte bound is reached or the deadline passes. Blocks whose key
//! lists show the tag is absent are skipped unread. The answer says whether
//! it is complete.

use std::collections::BTreeSet;
use std::time::Instant;

use weft_traceql::{AttrValue, Field, Intrinsic, Scope, SpanLike};

use crate::matching::{HeadSpan, SpanRows};
use crate::store::Store;
use crate::wire::{self, Scratch};
use crate::StoreError;

/// Intrinsic tags every span or trace has, as filters spell them.
pub const INTRINSICS: [Intrinsic; 7] = [
    Intrinsic::Duration,
    Intrinsic::Kind,
    Intrinsic::Name,
    Intrinsic::Status,
    Intrinsic::TraceDuration,
    Intrinsic::TraceRootName,
    Intrinsic::TraceRootService,
];

/// Attribute keys in the store.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TagNames {
    /// Span attribute keys.
    pub span: BTreeSet<String>,
    /// Resource attribute keys.
    pub resource: BTreeSet<String>,
    /// False when some block's key lists were cut at the cap (or predate
    /// them), so a key may be missing.
    pub complete: bool,
}

/// What [`Store::tag_values`] looks at and how far.
#[derive(Debug, Clone, Copy)]
pub struct ValuesQuery {
    /// Most distinct values returned.
    pub limit: usize,
    /// Most bytes of values held.
    pub max_bytes: usize,
    /// When to stop reading.
    pub deadline: Instant,
    /// Only blocks with spans in `[start, end)` (Unix ns) are read.
    pub start: u64,
    /// See `start`.
    pub end: u64,
}

/// A distinct value of a tag, typed as filters compare it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TagValue {
    /// `string`, `int`, `float`, `bool` or `keyword` (status and kind).
    pub kind: &'static str,
    /// The value as a filter would write it (strings unquoted).
    pub value: String,
}

/// The answer of [`Store::tag_values`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TagValues {
    /// Distinct values, sorted by type then value.
    pub values: Vec<TagValue>,
    /// Whether every value in the window is listed (no limit, byte bound or
    /// deadline was hit).
    pub complete: bool,
    /// Blocks read.
    pub blocks_read: u64,
    /// Blocks skipped because their key lists lack the tag, or by time.
    pub blocks_skipped: u64,
    /// Spans looked at.
    pub spans_read: u64,
}

/// Why a tag has no values to list.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    /// A duration has too many values to list.
    #[error("{0} takes any duration; its values are not listed")]
    NotEnumerable(String),
}

/// Distinct values collected under the bounds of a [`ValuesQuery`].
struct Collector {
    set: BTreeSet<TagValue>,
    bytes: usize,
    limit: usize,
    max_bytes: usize,
    full: bool,
}

impl Collector {
    fn add(&mut self, v: AttrValue<'_>) {
        if self.full {
            return;
        }
        let (kind, value) = match v {
            AttrValue::Str(s) => ("string", s.to_owned()),
            AttrValue::Int(i) => ("int", i.to_string()),
            AttrValue::Float(f) => ("float", f.to_string()),
            AttrValue::Bool(b) => ("bool", b.to_string()),
            AttrValue::Other => return,
        };
        let size = value.len();
        let v = TagValue { kind, value };
        if self.set.contains(&v) {
            return;
        }
        if self.set.len() >= self.limit || self.bytes + size > self.max_bytes {
            self.full = true;
            return;
        }
        self.bytes += size;
        self.set.insert(v);
    }
}

fn attr<'s>(s: &'s impl SpanLike, scope: Scope, key: &str) -> Option<AttrValue<'s>> {
    match scope {
        Scope::Span => s.span_attr(key),
        Scope::Resource => s.resource_attr(key),
        Scope::Any => s.span_attr(key).or_else(|| s.resource_attr(key)),
    }
}

fn keywords(names: &[&str]) -> Vec<TagValue> {
    names.iter().map(|n| TagValue { kind: "keyword", value: (*n).to_owned() }).collect()
}

impl Store {
    /// Attribute keys of every block and of the spans not sealed yet.
    pub fn tag_names(&self) -> TagNames {
        let mut out = TagNames { complete: true, ..Default::default() };
        for b in self.blocks() {
            out.span.extend(b.meta.span_keys.iter().cloned());
            out.resource.extend(b.meta.resource_keys.iter().cloned());
            out.complete &= b.meta.keys_complete;
        }
        let unsealed = self.unsealed_spans();
        let mut scratch = Scratch::default();
        for s in &unsealed {
            for kv in &s.origin.resource {
                if !out.resource.contains(&kv.key) {
                    out.resource.insert(kv.key.clone());
                }
            }
            scratch.clear();
            if let Ok(r) = wire::parse_span(&s.span, &mut scratch) {
                for kv in scratch.kvs.get(r.attributes).unwrap_or_default() {
                    if !out.span.contains(kv.key) {
                        out.span.insert(kv.key.to_owned());
                    }
                }
            }
        }
        out
    }

    /// Distinct values of `tag`, newest data first, within `q`'s bounds.
    pub fn tag_values(&self, tag: &Field, q: &ValuesQuery) -> Result<TagValues, TagError> {
        let (scope, key) = match tag {
            Field::Attr(scope, key) => (*scope, key.as_str()),
            Field::Intrinsic(Intrinsic::Status) => {
                return Ok(TagValues {
                    values: keywords(&["error", "ok", "unset"]),
                    complete: true,
                    ..Default::default()
                })
            }
            Field::Intrinsic(Intrinsic::Kind) => {
                return Ok(TagValues {
                    values: keywords(&["client", "consumer", "internal", "producer", "server", "unspecified"]),
                    complete: true,
                    ..Default::default()
                })
            }
            Field::Intrinsic(Intrinsic::Name | Intrinsic::TraceRootName) => {
                return Ok(self.listed(self.operations(None).into_iter().map(|(_, n)| n), q));
            }
            Field::Intrinsic(Intrinsic::TraceRootService) => return Ok(self.listed(self.services(), q)),
            Field::Intrinsic(i @ (Intrinsic::Duration | Intrinsic::TraceDuration)) => {
                return Err(TagError::NotEnumerable(i.as_str().to_owned()))
            }
        };
        if scope != Scope::Span && key == "service.name" {
            return Ok(self.listed(self.services(), q));
        }
        let mut c = Collector { set: BTreeSet::new(), bytes: 0, limit: q.limit, max_bytes: q.max_bytes, full: false };
        let mut out = TagValues::default();
        let unsealed = self.unsealed_spans();
        let mut scratch = Scratch::default();
        for s in &unsealed {
            scratch.clear();
            if let Ok(r) = wire::parse_span(&s.span, &mut scratch) {
                let h = HeadSpan { span: &r, kvs: &scratch.kvs, origin: &s.origin };
                if let Some(v) = attr(&h, scope, key) {
                    c.add(v);
                }
                out.spans_read += 1;
            }
        }
        let mut blocks = self.blocks();
        blocks.sort_by_key(|b| std::cmp::Reverse(b.meta.max_end));
        let mut timed_out = false;
        for b in blocks {
            if c.full {
                break;
            }
            let m = &b.meta;
            let absent = m.keys_complete
                && match scope {
                    Scope::Span => !m.span_keys.contains(key),
                    Scope::Resource => !m.resource_keys.contains(key),
                    Scope::Any => !m.span_keys.contains(key) && !m.resource_keys.contains(key),
                };
            if absent || m.max_end < q.start || m.min_start >= q.end || m.spans == 0 {
                out.blocks_skipped += 1;
                continue;
            }
            if Instant::now() >= q.deadline {
                timed_out = true;
                break;
            }
            let cols = SpanRows::columns(scope != Scope::Resource, scope != Scope::Span);
            match read_values(&b, &cols, scope, key, &mut c) {
                Ok(n) => {
                    out.spans_read += n;
                    out.blocks_read += 1;
                }
                // A block that cannot be read is reported by the store's
                // corruption accounting when it is opened or searched; here
                // its values are simply not listed, and the answer says so.
                Err(_) => timed_out = true,
            }
        }
        out.complete = !c.full && !timed_out;
        out.values = c.set.into_iter().collect();
        Ok(out)
    }

    /// The spans not in a block yet (cheap copies: shared bytes and origins),
    /// so they can be read in place with one reused scratch.
    fn unsealed_spans(&self) -> Vec<crate::span::StoredSpan> {
        let mut v = Vec::new();
        self.for_each_unsealed(|s| v.push(s.clone()));
        v
    }

    /// Names from metadata as string values, up to the limit.
    fn listed(&self, names: impl IntoIterator<Item = String>, q: &ValuesQuery) -> TagValues {
        let mut c = Collector { set: BTreeSet::new(), bytes: 0, limit: q.limit, max_bytes: q.max_bytes, full: false };
        for n in names {
            if !n.is_empty() {
                c.add(AttrValue::Str(&n));
            }
        }
        TagValues { complete: !c.full, values: c.set.into_iter().collect(), ..Default::default() }
    }
}

/// Adds the values of one block's tag; returns the rows read.
fn read_values(
    b: &crate::block::Block,
    cols: &[&str],
    scope: Scope,
    key: &str,
    c: &mut Collector,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for batch in b.span_columns(&[(0, b.meta.spans as usize)], cols)? {
        let rows = SpanRows::of(&batch)?;
        for i in 0..rows.len() {
            if let Some(v) = attr(&rows.row(i), scope, key) {
                c.add(v);
            }
        }
        n += rows.len() as u64;
        if c.full {
            break;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_collector_keeps_distinct_values_within_its_bounds() {
        let mut c = Collector { set: BTreeSet::new(), bytes: 0, limit: 3, max_bytes: 100, full: false };
        for v in [AttrValue::Str("a"), AttrValue::Str("a"), AttrValue::Int(1), AttrValue::Other, AttrValue::Bool(true)]
        {
            c.add(v);
        }
        assert_eq!(c.set.len(), 3);
        assert!(!c.full, "three distinct values fit a limit of three");
        c.add(AttrValue::Float(1.5));
        assert!(c.full);
        let mut c = Collector { set: BTreeSet::new(), bytes: 0, limit: 10, max_bytes: 4, full: false };
        c.add(AttrValue::Str("abc"));
        c.add(AttrValue::Str("de"));
        assert!(c.full, "bytes bound");
        assert_eq!(c.set.len(), 1);
    }

    fn query(limit: usize) -> ValuesQuery {
        ValuesQuery {
            limit,
            max_bytes: 1 << 20,
            deadline: Instant::now() + std::time::Duration::from_secs(60),
            start: 0,
            end: u64::MAX,
        }
    }

    /// Every value of `field` over every span of the known dataset.
    fn brute(field: &Field) -> BTreeSet<TagValue> {
        let d = crate::search::tests::data();
        let (scope, key) = match field {
            Field::Attr(s, k) => (*s, k.as_str()),
            Field::Intrinsic(_) => unreachable!(),
        };
        let mut c = Collector { set: BTreeSet::new(), bytes: 0, limit: usize::MAX, max_bytes: usize::MAX, full: false };
        for s in d.traces.values().flatten() {
            if let Some(v) = attr(s, scope, key) {
                c.add(v);
            }
        }
        c.set
    }

    #[test]
    fn names_are_every_key_of_head_and_blocks() {
        let d = crate::search::tests::data();
        let names = d.store.tag_names();
        let mut span = BTreeSet::new();
        let mut resource = BTreeSet::new();
        for s in d.traces.values().flatten() {
            span.extend(s.span.attributes.iter().map(|kv| kv.key.clone()));
            resource.extend(s.origin.resource.iter().map(|kv| kv.key.clone()));
        }
        assert_eq!(names.span, span);
        assert_eq!(names.resource, resource);
        assert!(names.complete);
        assert!(d.store.blocks().iter().all(|b| b.meta.keys_complete && !b.meta.span_keys.is_empty()));
    }

    #[test]
    fn values_are_what_a_scan_of_every_span_finds() {
        let d = crate::search::tests::data();
        for tag in ["span.http.status", "span.region", "span.ratio", "span.cached", ".region", "resource.deployment"] {
            let field = weft_traceql::parse_field(tag).unwrap();
            let got = d.store.tag_values(&field, &query(1000)).unwrap();
            assert!(got.complete, "{tag}");
            assert_eq!(got.values.iter().cloned().collect::<BTreeSet<_>>(), brute(&field), "{tag}");
            assert_eq!(got.blocks_read, 2, "{tag}");
        }
        let kinds: Vec<&str> = d
            .store
            .tag_values(&weft_traceql::parse_field("span.cached").unwrap(), &query(10))
            .unwrap()
            .values
            .iter()
            .map(|v| v.kind)
            .collect();
        assert_eq!(kinds, ["bool", "bool"]);
    }

    #[test]
    fn blocks_without_the_key_are_not_read_and_limits_say_incomplete() {
        let d = crate::search::tests::data();
        let absent = d.store.tag_values(&weft_traceql::parse_field("span.nowhere").unwrap(), &query(10)).unwrap();
        assert!(absent.values.is_empty() && absent.complete);
        assert_eq!((absent.blocks_read, absent.blocks_skipped), (0, 2));
        let cut = d.store.tag_values(&weft_traceql::parse_field("span.http.status").unwrap(), &query(2)).unwrap();
        assert_eq!(cut.values.len(), 2);
        assert!(!cut.complete);
        let past = ValuesQuery { deadline: Instant::now(), ..query(100) };
        let late = d.store.tag_values(&weft_traceql::parse_field("span.region").unwrap(), &past).unwrap();
        assert!(!late.complete, "a deadline already past stops before the blocks");
    }

    #[test]
    fn intrinsics_list_their_values_or_say_why_not() {
        let d = crate::search::tests::data();
        let q = query(100);
        let p = |t: &str| weft_traceql::parse_field(t).unwrap();
        let names: BTreeSet<String> =
            d.store.tag_values(&p("name"), &q).unwrap().values.into_iter().map(|v| v.value).collect();
        let want: BTreeSet<String> = d.traces.values().flatten().map(|s| s.span.name.clone()).collect();
        assert_eq!(names, want);
        let services = d.store.tag_values(&p("resource.service.name"), &q).unwrap();
        assert_eq!(services.values.len(), 5);
        assert_eq!(d.store.tag_values(&p("status"), &q).unwrap().values.len(), 3);
        assert_eq!(d.store.tag_values(&p("kind"), &q).unwrap().values[0].kind, "keyword");
        assert!(matches!(d.store.tag_values(&p("duration"), &q), Err(TagError::NotEnumerable(_))));
    }
}
