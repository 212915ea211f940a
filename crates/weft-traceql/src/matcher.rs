//! Runs a parsed query against spans and traces.
//!
//! A [`Filter`] numbers the query's spansets. For each span the caller asks
//! which spansets it satisfies ([`Filter::mark_span`]), ORs those marks over a
//! trace's spans, and asks whether the trace matches ([`Filter::trace_matches`]):
//! `{A} && {B}` needs some span for A and some (maybe other) span for B.
//!
//! ## Value semantics
//! - A comparison with an attribute the span lacks is false, for `!=` too
//!   (`span.x != "a"` needs an `x`); `= nil` asks for absence, `!= nil` for
//!   presence.
//! - Numbers compare across int and double attributes; a string never equals a
//!   number; durations compare with numeric attributes as nanoseconds.
//! - Unscoped `.x` holds if the comparison holds for the span's `x` or for the
//!   resource's `x` (`.x = nil`: neither has one).
//! - Regexes match the whole value (`=~ "GET"` does not match `"GET /x"`).

use std::cmp::Ordering;

use regex::Regex;

use crate::ast::{Cond, Field, Intrinsic, Literal, Op, Query, Scope, SpanExpr};
use crate::parser::ParseError;

/// A compiled regex may not take more memory than this.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compiles a regex that must match a whole value.
pub fn compile_regex(re: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{re})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
}

/// An attribute's value as a query sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AttrValue<'a> {
    /// String.
    Str(&'a str),
    /// Integer.
    Int(i64),
    /// Double.
    Float(f64),
    /// Boolean.
    Bool(bool),
    /// Bytes, arrays, maps: present, but never equal to a literal.
    Other,
}

/// What a query needs to know of one span.
pub trait SpanLike {
    /// Span name.
    fn name(&self) -> &str;
    /// OTLP span kind number.
    fn kind(&self) -> i32;
    /// OTLP status code number.
    fn status(&self) -> i32;
    /// End minus start, ns (0 if the end is before the start).
    fn duration_ns(&self) -> u64;
    /// The span's attribute `key` (the first, if repeated).
    fn span_attr(&self, key: &str) -> Option<AttrValue<'_>>;
    /// Its resource's attribute `key`.
    fn resource_attr(&self, key: &str) -> Option<AttrValue<'_>>;
}

/// What a query needs to know of a span's trace.
pub trait TraceLike {
    /// The trace's duration, ns (its summary's).
    fn duration_ns(&self) -> u64;
    /// The root span's name ("" without one).
    fn root_name(&self) -> &str;
    /// The root span's service ("" without one).
    fn root_service(&self) -> &str;
}

/// What a block (or any set of spans) is known to hold, for skipping it.
pub trait Pruning {
    /// Whether some span may have this service (`resource.service.name`).
    fn may_have_service(&self, service: &str) -> bool;
    /// Whether some span may have this name.
    fn may_have_name(&self, name: &str) -> bool;
}

#[derive(Debug)]
enum Value {
    Str(String),
    Regex(Regex),
    Int(i64),
    Float(f64),
    Bool(bool),
    Duration(u64),
    Code(i32),
    Nil,
}

#[derive(Debug)]
struct Test {
    field: Field,
    op: Op,
    value: Value,
}

#[derive(Debug)]
enum Expr {
    All,
    Test(Test),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

#[derive(Debug)]
enum Sets {
    Set(usize),
    And(Box<Sets>, Box<Sets>),
    Or(Box<Sets>, Box<Sets>),
}

/// A query ready to run.
#[derive(Debug)]
pub struct Filter {
    sets: Sets,
    exprs: Vec<Expr>,
    text: String,
    trace_level: bool,
}

impl Filter {
    /// Parses and compiles `src` (empty = every trace).
    pub fn parse(src: &str) -> Result<Filter, ParseError> {
        let q = crate::parser::parse(src)?;
        Filter::new(&q).map_err(|e| ParseError { column: 1, expected: "a valid regular expression".into(), found: e })
    }

    /// Compiles a parsed query (fails only on a regex the parser let through).
    pub fn new(q: &Query) -> Result<Filter, String> {
        let mut exprs = Vec::new();
        let sets = compile_sets(q, &mut exprs)?;
        let trace_level = exprs.iter().any(mentions_trace);
        Ok(Filter { sets, exprs, text: q.to_string(), trace_level })
    }

    /// The query in canonical form (same text for equivalent spellings).
    pub fn canonical(&self) -> &str {
        &self.text
    }

    /// How many spansets it has (the length of the marks it uses).
    pub fn spansets(&self) -> usize {
        self.exprs.len()
    }

    /// Whether every trace matches (`{}`), so no span need be read.
    pub fn matches_everything(&self) -> bool {
        matches!(self.sets, Sets::Set(0)) && matches!(self.exprs.first(), Some(Expr::All))
    }

    /// Whether it looks at trace-level fields (`trace:duration`, …).
    pub fn uses_trace_fields(&self) -> bool {
        self.trace_level
    }

    /// Sets `marks[i]` for every spanset `i` the span satisfies (never clears).
    pub fn mark_span(&self, span: &impl SpanLike, trace: &impl TraceLike, marks: &mut [bool]) {
        for (i, e) in self.exprs.iter().enumerate() {
            if !marks[i] && eval(e, span, trace) {
                marks[i] = true;
            }
        }
    }

    /// Whether the span satisfies at least one spanset (the spans a search
    /// returns as "matched").
    pub fn matches_any_spanset(&self, span: &impl SpanLike, trace: &impl TraceLike) -> bool {
        self.exprs.iter().any(|e| eval(e, span, trace))
    }

    /// Which attribute lists it reads: (span attributes, resource attributes
    /// other than `service.name`).
    pub fn attribute_scopes(&self) -> (bool, bool) {
        let mut out = (false, false);
        for e in &self.exprs {
            scopes(e, &mut out);
        }
        out
    }

    /// Whether a trace whose spans left these marks matches.
    pub fn trace_matches(&self, marks: &[bool]) -> bool {
        sets_match(&self.sets, marks)
    }

    /// Whether spans known by `p` could make a trace match; `false` means a
    /// block described by `p` can be skipped.
    pub fn may_match(&self, p: &impl Pruning) -> bool {
        let possible: Vec<bool> = self.exprs.iter().map(|e| possible(e, p)).collect();
        sets_match(&self.sets, &possible)
    }
}

fn mentions_trace(e: &Expr) -> bool {
    match e {
        Expr::All => false,
        Expr::Test(t) => matches!(t.field, Field::Intrinsic(i) if i.is_trace_level()),
        Expr::And(a, b) | Expr::Or(a, b) => mentions_trace(a) || mentions_trace(b),
    }
}

fn scopes(e: &Expr, out: &mut (bool, bool)) {
    match e {
        Expr::All => {}
        Expr::Test(Test { field: Field::Attr(scope, key), .. }) => {
            let service = key == "service.name";
            match scope {
                Scope::Span => out.0 = true,
                Scope::Resource => out.1 |= !service,
                Scope::Any => {
                    out.0 = true;
                    out.1 |= !service;
                }
            }
        }
        Expr::Test(_) => {}
        Expr::And(a, b) | Expr::Or(a, b) => {
            scopes(a, out);
            scopes(b, out);
        }
    }
}

fn compile_sets(q: &Query, exprs: &mut Vec<Expr>) -> Result<Sets, String> {
    Ok(match q {
        Query::Spanset(e) => {
            exprs.push(compile_expr(e)?);
            Sets::Set(exprs.len() - 1)
        }
        Query::And(a, b) => Sets::And(Box::new(compile_sets(a, exprs)?), Box::new(compile_sets(b, exprs)?)),
        Query::Or(a, b) => Sets::Or(Box::new(compile_sets(a, exprs)?), Box::new(compile_sets(b, exprs)?)),
    })
}

fn compile_expr(e: &SpanExpr) -> Result<Expr, String> {
    Ok(match e {
        SpanExpr::All => Expr::All,
        SpanExpr::Cond(Cond { field, op, value }) => {
            let value = match (op, value) {
                (Op::Re | Op::NotRe, Literal::Str(s)) => Value::Regex(compile_regex(s).map_err(|e| e.to_string())?),
                (_, Literal::Str(s)) => Value::Str(s.clone()),
                (_, Literal::Int(i)) => Value::Int(*i),
                (_, Literal::Float(x)) => Value::Float(*x),
                (_, Literal::Bool(b)) => Value::Bool(*b),
                (_, Literal::Duration(d)) => Value::Duration(*d),
                (_, Literal::Status(s)) => Value::Code(*s as i32),
                (_, Literal::Kind(k)) => Value::Code(*k as i32),
                (_, Literal::Nil) => Value::Nil,
            };
            Expr::Test(Test { field: field.clone(), op: *op, value })
        }
        SpanExpr::And(a, b) => Expr::And(Box::new(compile_expr(a)?), Box::new(compile_expr(b)?)),
        SpanExpr::Or(a, b) => Expr::Or(Box::new(compile_expr(a)?), Box::new(compile_expr(b)?)),
    })
}

fn sets_match(s: &Sets, marks: &[bool]) -> bool {
    match s {
        Sets::Set(i) => marks.get(*i).copied().unwrap_or(false),
        Sets::And(a, b) => sets_match(a, marks) && sets_match(b, marks),
        Sets::Or(a, b) => sets_match(a, marks) || sets_match(b, marks),
    }
}

fn possible(e: &Expr, p: &impl Pruning) -> bool {
    match e {
        Expr::Test(Test { field, op: Op::Eq, value: Value::Str(s) }) => match field {
            Field::Attr(Scope::Resource, k) if k == "service.name" => p.may_have_service(s),
            Field::Intrinsic(Intrinsic::Name) => p.may_have_name(s),
            _ => true,
        },
        Expr::And(a, b) => possible(a, p) && possible(b, p),
        Expr::Or(a, b) => possible(a, p) || possible(b, p),
        _ => true,
    }
}

fn eval(e: &Expr, span: &impl SpanLike, trace: &impl TraceLike) -> bool {
    match e {
        Expr::All => true,
        Expr::Test(t) => test(t, span, trace),
        Expr::And(a, b) => eval(a, span, trace) && eval(b, span, trace),
        Expr::Or(a, b) => eval(a, span, trace) || eval(b, span, trace),
    }
}

fn ordered(op: Op, o: Option<Ordering>) -> bool {
    let Some(o) = o else { return false };
    match op {
        Op::Eq => o == Ordering::Equal,
        Op::Ne => o != Ordering::Equal,
        Op::Gt => o == Ordering::Greater,
        Op::Ge => o != Ordering::Less,
        Op::Lt => o == Ordering::Less,
        Op::Le => o != Ordering::Greater,
        Op::Re | Op::NotRe => false,
    }
}

fn string_test(op: Op, value: &Value, s: &str) -> bool {
    match value {
        Value::Regex(re) => re.is_match(s) == (op == Op::Re),
        Value::Str(lit) => ordered(op, Some(s.cmp(lit))),
        _ => false,
    }
}

fn attr_test(op: Op, value: &Value, a: Option<AttrValue<'_>>) -> bool {
    let Some(a) = a else { return false };
    match (value, a) {
        (Value::Str(_) | Value::Regex(_), AttrValue::Str(s)) => string_test(op, value, s),
        (Value::Int(l), AttrValue::Int(x)) => ordered(op, Some(x.cmp(l))),
        (Value::Int(l), AttrValue::Float(x)) => ordered(op, x.partial_cmp(&(*l as f64))),
        (Value::Float(l), AttrValue::Int(x)) => ordered(op, (x as f64).partial_cmp(l)),
        (Value::Float(l), AttrValue::Float(x)) => ordered(op, x.partial_cmp(l)),
        (Value::Duration(d), AttrValue::Int(x)) => ordered(op, Some(i128::from(x).cmp(&i128::from(*d)))),
        (Value::Duration(d), AttrValue::Float(x)) => ordered(op, x.partial_cmp(&(*d as f64))),
        (Value::Bool(l), AttrValue::Bool(x)) => ordered(op, Some(x.cmp(l))),
        _ => false,
    }
}

fn test(t: &Test, span: &impl SpanLike, trace: &impl TraceLike) -> bool {
    match &t.field {
        Field::Intrinsic(i) => match i {
            Intrinsic::Name => string_test(t.op, &t.value, span.name()),
            Intrinsic::TraceRootName => string_test(t.op, &t.value, trace.root_name()),
            Intrinsic::TraceRootService => string_test(t.op, &t.value, trace.root_service()),
            Intrinsic::Status | Intrinsic::Kind => {
                let got = if *i == Intrinsic::Status { span.status() } else { span.kind() };
                matches!(t.value, Value::Code(c) if (got == c) == (t.op == Op::Eq))
            }
            Intrinsic::Duration | Intrinsic::TraceDuration => {
                let got = if *i == Intrinsic::Duration { span.duration_ns() } else { trace.duration_ns() };
                matches!(t.value, Value::Duration(d) if ordered(t.op, Some(got.cmp(&d))))
            }
        },
        Field::Attr(scope, key) => {
            let span_value = || span.span_attr(key);
            let resource_value = || span.resource_attr(key);
            if let Value::Nil = t.value {
                let present = match scope {
                    Scope::Span => span_value().is_some(),
                    Scope::Resource => resource_value().is_some(),
                    Scope::Any => span_value().is_some() || resource_value().is_some(),
                };
                return present == (t.op == Op::Ne);
            }
            match scope {
                Scope::Span => attr_test(t.op, &t.value, span_value()),
                Scope::Resource => attr_test(t.op, &t.value, resource_value()),
                Scope::Any => attr_test(t.op, &t.value, span_value()) || attr_test(t.op, &t.value, resource_value()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct S {
        name: &'static str,
        kind: i32,
        status: i32,
        dur: u64,
        attrs: Vec<(&'static str, AttrValue<'static>)>,
        res: Vec<(&'static str, AttrValue<'static>)>,
    }

    impl SpanLike for S {
        fn name(&self) -> &str {
            self.name
        }
        fn kind(&self) -> i32 {
            self.kind
        }
        fn status(&self) -> i32 {
            self.status
        }
        fn duration_ns(&self) -> u64 {
            self.dur
        }
        fn span_attr(&self, key: &str) -> Option<AttrValue<'_>> {
            self.attrs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        }
        fn resource_attr(&self, key: &str) -> Option<AttrValue<'_>> {
            self.res.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
        }
    }

    struct T;
    impl TraceLike for T {
        fn duration_ns(&self) -> u64 {
            2_000_000_000
        }
        fn root_name(&self) -> &str {
            "GET /"
        }
        fn root_service(&self) -> &str {
            "front"
        }
    }

    fn matches(q: &str, spans: &[S]) -> bool {
        let f = Filter::parse(q).unwrap();
        let mut marks = vec![false; f.spansets()];
        for s in spans {
            f.mark_span(s, &T, &mut marks);
        }
        f.trace_matches(&marks)
    }

    fn span() -> S {
        S {
            name: "GET /users",
            kind: 2,
            status: 2,
            dur: 150_000_000,
            attrs: vec![
                ("http.status", AttrValue::Int(503)),
                ("ratio", AttrValue::Float(0.5)),
                ("ok", AttrValue::Bool(false)),
            ],
            res: vec![("service.name", AttrValue::Str("api")), ("region", AttrValue::Str("eu"))],
        }
    }

    #[test]
    fn intrinsics() {
        let s = [span()];
        assert!(matches(r#"{ name = "GET /users" }"#, &s));
        assert!(matches(r#"{ name =~ "GET .*" }"#, &s));
        assert!(!matches(r#"{ name =~ "GET" }"#, &s), "regexes match the whole value");
        assert!(matches(r#"{ name !~ "POST.*" }"#, &s));
        assert!(matches("{ status = error && kind = server }", &s));
        assert!(!matches("{ status != error }", &s));
        assert!(matches("{ duration >= 150ms && duration < 151ms }", &s));
        assert!(matches("{ trace:duration > 1s && trace:rootService = \"front\" }", &s));
        assert!(!matches("{ trace:rootName != \"GET /\" }", &s));
    }

    #[test]
    fn attributes() {
        let s = [span()];
        assert!(matches("{ span.http.status >= 500 }", &s));
        assert!(matches("{ span.http.status > 502.5 }", &s), "int against float");
        assert!(matches("{ span.ratio < 1 }", &s), "float against int");
        assert!(!matches("{ span.http.status = \"503\" }", &s), "a string never equals a number");
        assert!(matches("{ span.ok = false }", &s));
        assert!(matches("{ resource.region = \"eu\" && .region =~ \"e.\" }", &s));
        assert!(!matches("{ span.region = \"eu\" }", &s));
        assert!(!matches("{ span.missing != \"x\" }", &s), "!= needs the attribute");
        assert!(matches("{ span.missing = nil && .region != nil && .missing = nil }", &s));
        assert!(!matches("{ .region = nil }", &s));
    }

    #[test]
    fn spansets_may_match_different_spans() {
        let a = span();
        let b = S { name: "db", res: vec![("service.name", AttrValue::Str("db"))], ..S::default() };
        let both = [a, b];
        assert!(matches(r#"{ resource.service.name = "api" } && { name = "db" }"#, &both));
        assert!(!matches(r#"{ resource.service.name = "api" && name = "db" }"#, &both));
        assert!(matches(r#"{ name = "nope" } || { name = "db" }"#, &both));
        assert!(!matches(r#"{ name = "nope" } && { name = "db" }"#, &both));
        assert!(matches("{}", &both));
        assert!(!matches("{}", &[]), "a trace with no spans matches nothing");
    }

    struct Only(&'static str);
    impl Pruning for Only {
        fn may_have_service(&self, s: &str) -> bool {
            s == self.0
        }
        fn may_have_name(&self, _: &str) -> bool {
            true
        }
    }

    #[test]
    fn pruning() {
        let p = Only("api");
        let may = |q: &str| Filter::parse(q).unwrap().may_match(&p);
        assert!(may(r#"{ resource.service.name = "api" }"#));
        assert!(!may(r#"{ resource.service.name = "db" }"#));
        assert!(may(r#"{ resource.service.name = "db" || span.x = 1 }"#));
        assert!(!may(r#"{ resource.service.name = "db" } && { span.x = 1 }"#));
        assert!(may(r#"{ resource.service.name = "db" } || { span.x = 1 }"#));
        assert!(may(r#"{ resource.service.name != "db" }"#));
    }
}
