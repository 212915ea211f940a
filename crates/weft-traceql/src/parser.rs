//! Recursive-descent parser for the subset. `&&` binds tighter than `||` at
//! both levels (between spansets and inside one), as in TraceQL.

use thiserror::Error;

use crate::ast::{Cond, Field, Intrinsic, Kind, Literal, Op, Query, Scope, SpanExpr, StatusCode};
use crate::lexer::{tokens, Tok};

/// Nesting deeper than this is refused: it bounds the parser's stack on
/// hostile input (`((((…`).
const MAX_DEPTH: usize = 64;
/// Longest filter accepted, bytes.
pub const MAX_LEN: usize = 16 * 1024;

/// Why a filter did not parse: where (1-based column, in characters), what was
/// expected there and what was found.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("at column {column}: expected {expected}, found {found}")]
pub struct ParseError {
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What would have been valid.
    pub expected: String,
    /// What was there.
    pub found: String,
}

impl ParseError {
    /// An error at byte offset `at` of `src`.
    pub fn at(src: &str, at: usize, expected: impl Into<String>, found: impl Into<String>) -> Self {
        let at = at.min(src.len());
        let column = src.char_indices().take_while(|(i, _)| *i < at).count() + 1;
        ParseError { column, expected: expected.into(), found: found.into() }
    }
}

/// Parses a filter. An empty or blank filter is `{ }` (every trace).
pub fn parse(src: &str) -> Result<Query, ParseError> {
    if src.len() > MAX_LEN {
        return Err(ParseError::at(
            src,
            MAX_LEN,
            format!("a filter of at most {MAX_LEN} bytes"),
            format!("{} bytes", src.len()),
        ));
    }
    if src.trim().is_empty() {
        return Ok(Query::Spanset(SpanExpr::All));
    }
    let toks = tokens(src)?;
    let mut p = Parser { src, toks, pos: 0, depth: 0 };
    let q = p.query()?;
    p.expect_end("\"&&\", \"||\" or the end of the filter")?;
    Ok(q)
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<(usize, Tok)>,
    pos: usize,
    depth: usize,
}

const SPANSET: &str = "a spanset \"{ … }\" or \"(\"";
const CONDITION: &str = "a condition (like name = \"x\", span.attr > 5, duration > 100ms), \"(\", \"true\" or \"}\"";
const OPERATOR: &str = "an operator (=, !=, >, >=, <, <=, =~, !~)";

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |(_, t)| t)
    }

    fn offset(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |(o, _)| *o)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos = (self.pos + 1).min(self.toks.len());
        t
    }

    fn err(&self, expected: &str) -> ParseError {
        ParseError::at(self.src, self.offset(), expected, self.peek().describe())
    }

    fn expect_end(&self, expected: &str) -> Result<(), ParseError> {
        if *self.peek() == Tok::End {
            Ok(())
        } else {
            Err(self.err(expected))
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(&format!("at most {MAX_DEPTH} levels of nesting")));
        }
        Ok(())
    }

    // query := and ("||" and)*
    fn query(&mut self) -> Result<Query, ParseError> {
        let mut q = self.query_and()?;
        while *self.peek() == Tok::Or {
            self.bump();
            q = Query::Or(Box::new(q), Box::new(self.query_and()?));
        }
        Ok(q)
    }

    // and := atom ("&&" atom)*
    fn query_and(&mut self) -> Result<Query, ParseError> {
        let mut q = self.query_atom()?;
        while *self.peek() == Tok::And {
            self.bump();
            q = Query::And(Box::new(q), Box::new(self.query_atom()?));
        }
        Ok(q)
    }

    // atom := "{" expr? "}" | "(" query ")"
    fn query_atom(&mut self) -> Result<Query, ParseError> {
        match self.peek() {
            Tok::LBrace => {
                self.bump();
                if *self.peek() == Tok::RBrace {
                    self.bump();
                    return Ok(Query::Spanset(SpanExpr::All));
                }
                let e = self.expr()?;
                if *self.peek() != Tok::RBrace {
                    return Err(self.err("\"&&\", \"||\" or \"}\""));
                }
                self.bump();
                Ok(Query::Spanset(e))
            }
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let q = self.query()?;
                if *self.peek() != Tok::RParen {
                    return Err(self.err("\"&&\", \"||\" or \")\""));
                }
                self.bump();
                self.depth -= 1;
                Ok(q)
            }
            Tok::Word(w) if field_of(w).is_some() => {
                Err(self.err("a spanset \"{ … }\" or \"(\" (conditions go inside braces)"))
            }
            _ => Err(self.err(SPANSET)),
        }
    }

    fn expr(&mut self) -> Result<SpanExpr, ParseError> {
        let mut e = self.expr_and()?;
        while *self.peek() == Tok::Or {
            self.bump();
            e = SpanExpr::Or(Box::new(e), Box::new(self.expr_and()?));
        }
        Ok(e)
    }

    fn expr_and(&mut self) -> Result<SpanExpr, ParseError> {
        let mut e = self.expr_atom()?;
        while *self.peek() == Tok::And {
            self.bump();
            e = SpanExpr::And(Box::new(e), Box::new(self.expr_atom()?));
        }
        Ok(e)
    }

    fn expr_atom(&mut self) -> Result<SpanExpr, ParseError> {
        match self.peek().clone() {
            Tok::LParen => {
                self.enter()?;
                self.bump();
                let e = self.expr()?;
                if *self.peek() != Tok::RParen {
                    return Err(self.err("\"&&\", \"||\" or \")\""));
                }
                self.bump();
                self.depth -= 1;
                Ok(e)
            }
            Tok::Word(w) if w == "true" => {
                self.bump();
                Ok(SpanExpr::All)
            }
            Tok::Word(w) => {
                let Some(field) = field_of(&w) else {
                    return Err(self.err(CONDITION));
                };
                self.bump();
                self.condition(field)
            }
            Tok::QuotedAttr(prefix, key) => {
                let scope = match prefix.as_str() {
                    "span" => Scope::Span,
                    "resource" => Scope::Resource,
                    _ => Scope::Any,
                };
                self.bump();
                self.condition(Field::Attr(scope, key))
            }
            _ => Err(self.err(CONDITION)),
        }
    }

    fn condition(&mut self, field: Field) -> Result<SpanExpr, ParseError> {
        let Tok::Op(op) = self.peek().clone() else {
            return Err(self.err(OPERATOR));
        };
        self.bump();
        let at = self.offset();
        let value = self.literal(&field)?;
        check(self.src, at, &field, op, &value)?;
        Ok(SpanExpr::Cond(Cond { field, op, value }))
    }

    fn literal(&mut self, field: &Field) -> Result<Literal, ParseError> {
        let at = self.offset();
        let lit = match self.peek().clone() {
            Tok::Str(s) => Literal::Str(s),
            Tok::Number(n, None) => {
                if let Ok(i) = n.parse::<i64>() {
                    Literal::Int(i)
                } else if !n.contains(['.', 'e', 'E']) {
                    return Err(self.err("a number that fits in 64 bits"));
                } else {
                    match n.parse::<f64>() {
                        Ok(x) if x.is_finite() => Literal::Float(x),
                        _ => return Err(self.err("a number that fits in 64 bits")),
                    }
                }
            }
            Tok::Number(n, Some(unit)) => match duration(&n, &unit) {
                Some(ns) => Literal::Duration(ns),
                None => {
                    return Err(ParseError::at(
                        self.src,
                        at,
                        "a duration: a non-negative number with a unit ns, us, µs, ms, s, m or h (like 150ms)",
                        format!("\"{n}{unit}\""),
                    ))
                }
            },
            Tok::Word(w) => match w.as_str() {
                "true" => Literal::Bool(true),
                "false" => Literal::Bool(false),
                "nil" => Literal::Nil,
                "error" => Literal::Status(StatusCode::Error),
                "ok" => Literal::Status(StatusCode::Ok),
                "unset" => Literal::Status(StatusCode::Unset),
                w => match Kind::ALL.iter().find(|k| k.as_str() == w) {
                    Some(k) => Literal::Kind(*k),
                    None => return Err(self.err(&value_hint(field))),
                },
            },
            _ => return Err(self.err(&value_hint(field))),
        };
        self.bump();
        Ok(lit)
    }
}

/// What a value for `field` looks like, for error messages.
fn value_hint(field: &Field) -> String {
    match field {
        Field::Intrinsic(Intrinsic::Status) => "a status: error, ok or unset".into(),
        Field::Intrinsic(Intrinsic::Kind) => {
            "a span kind: unspecified, internal, server, client, producer or consumer".into()
        }
        Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration) => "a duration (like 150ms or 1.5s)".into(),
        Field::Intrinsic(_) => "a quoted string".into(),
        Field::Attr(..) => "a value: a quoted string, a number, a duration, true, false or nil".into(),
    }
}

/// Refuses comparisons that can never be meant: `status > error`, `name > 5`,
/// `duration = "x"`, regexes that do not compile.
fn check(src: &str, at: usize, field: &Field, op: Op, value: &Literal) -> Result<(), ParseError> {
    let fail = |expected: String| Err(ParseError::at(src, at, expected, format!("\"{value}\"")));
    let equality = matches!(op, Op::Eq | Op::Ne);
    let regex = matches!(op, Op::Re | Op::NotRe);
    match (field, value) {
        (Field::Intrinsic(Intrinsic::Status), Literal::Status(_))
        | (Field::Intrinsic(Intrinsic::Kind), Literal::Kind(_))
            if equality => {}
        (Field::Intrinsic(Intrinsic::Status | Intrinsic::Kind), _) => {
            return fail(format!("{} with = or != ({})", field, value_hint(field)))
        }
        (Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration), Literal::Duration(_)) if !regex => {}
        (Field::Intrinsic(Intrinsic::Duration | Intrinsic::TraceDuration), _) => {
            return fail(format!("{field} compared (=, !=, >, >=, <, <=) with a duration (like 150ms)"))
        }
        (Field::Intrinsic(_), Literal::Str(_)) => {}
        (Field::Intrinsic(_), _) => return fail(format!("{field} compared with a quoted string")),
        (Field::Attr(..), Literal::Nil) if equality => {}
        (Field::Attr(..), Literal::Nil) => return fail("nil with = or !=".into()),
        (Field::Attr(..), Literal::Bool(_)) if equality => {}
        (Field::Attr(..), Literal::Bool(_)) => return fail("true or false with = or !=".into()),
        (Field::Attr(..), Literal::Status(_) | Literal::Kind(_)) => {
            return fail("a value: a quoted string, a number, a duration, true, false or nil".into())
        }
        (Field::Attr(..), _) => {}
    }
    if regex {
        let Literal::Str(re) = value else {
            return fail("a quoted regular expression after =~ or !~".into());
        };
        if let Err(e) = crate::matcher::compile_regex(re) {
            return Err(ParseError::at(src, at, "a valid regular expression", format!("{re:?} ({e})")));
        }
    }
    Ok(())
}

/// The field a tag name names: an intrinsic (`name`, `status`, `trace:duration`
/// …) or a scoped attribute (`span.x`, `resource.x`, `.x`), as in filters.
/// `None` for anything else (the tag APIs use it to check a tag's name).
pub fn parse_field(tag: &str) -> Option<Field> {
    field_of(tag)
}

/// The field a word names, if any.
fn field_of(w: &str) -> Option<Field> {
    let intrinsic = match w {
        "name" | "span:name" => Some(Intrinsic::Name),
        "status" | "span:status" => Some(Intrinsic::Status),
        "kind" | "span:kind" => Some(Intrinsic::Kind),
        "duration" | "span:duration" => Some(Intrinsic::Duration),
        "trace:duration" | "traceDuration" => Some(Intrinsic::TraceDuration),
        "trace:rootName" | "rootName" => Some(Intrinsic::TraceRootName),
        "trace:rootService" | "rootServiceName" => Some(Intrinsic::TraceRootService),
        _ => None,
    };
    if let Some(i) = intrinsic {
        return Some(Field::Intrinsic(i));
    }
    let (scope, key) = if let Some(k) = w.strip_prefix("span.") {
        (Scope::Span, k)
    } else if let Some(k) = w.strip_prefix("resource.") {
        (Scope::Resource, k)
    } else if let Some(k) = w.strip_prefix('.') {
        (Scope::Any, k)
    } else {
        return None;
    };
    (!key.is_empty()).then(|| Field::Attr(scope, key.to_owned()))
}

/// Nanoseconds of a duration literal, if valid.
fn duration(n: &str, unit: &str) -> Option<u64> {
    let scale: f64 = match unit {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    };
    if let Ok(i) = n.parse::<u64>() {
        return i.checked_mul(scale as u64);
    }
    let x: f64 = n.parse().ok()?;
    let ns = (x * scale).round();
    (x.is_finite() && x >= 0.0 && ns < u64::MAX as f64).then_some(ns as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(scope: Scope, k: &str) -> Field {
        Field::Attr(scope, k.into())
    }

    fn cond(field: Field, op: Op, value: Literal) -> SpanExpr {
        SpanExpr::Cond(Cond { field, op, value })
    }

    #[test]
    fn parses_the_subset() {
        let q = parse(r#"{ resource.service.name = "api" && span.http.status_code >= 500 } && { duration > 1.5s }"#)
            .unwrap();
        assert_eq!(
            q,
            Query::And(
                Box::new(Query::Spanset(SpanExpr::And(
                    Box::new(cond(attr(Scope::Resource, "service.name"), Op::Eq, Literal::Str("api".into()))),
                    Box::new(cond(attr(Scope::Span, "http.status_code"), Op::Ge, Literal::Int(500))),
                ))),
                Box::new(Query::Spanset(cond(
                    Field::Intrinsic(Intrinsic::Duration),
                    Op::Gt,
                    Literal::Duration(1_500_000_000)
                ))),
            )
        );
        assert_eq!(parse("").unwrap(), Query::Spanset(SpanExpr::All));
        assert_eq!(parse("{}").unwrap(), Query::Spanset(SpanExpr::All));
        assert_eq!(
            parse("{ status = error || kind = server }").unwrap(),
            Query::Spanset(SpanExpr::Or(
                Box::new(cond(Field::Intrinsic(Intrinsic::Status), Op::Eq, Literal::Status(StatusCode::Error))),
                Box::new(cond(Field::Intrinsic(Intrinsic::Kind), Op::Eq, Literal::Kind(Kind::Server))),
            ))
        );
        assert_eq!(
            parse(r#"{ .x = nil } || { trace:rootService =~ "a.*" }"#).unwrap().to_string(),
            r#"{ .x = nil } || { trace:rootService =~ "a.*" }"#
        );
    }

    #[test]
    fn and_binds_tighter_than_or() {
        // `&&` groups first: the `||` is on top, and the text needs no parentheses.
        let q = parse("{ .a = 1 || .b = 2 && .c = 3 }").unwrap();
        assert!(matches!(&q, Query::Spanset(SpanExpr::Or(_, b)) if matches!(**b, SpanExpr::And(..))), "{q:?}");
        assert_eq!(q.to_string(), "{ .a = 1 || .b = 2 && .c = 3 }");
        let q = parse("{ .a = 1 } || { .b = 2 } && { .c = 3 }").unwrap();
        assert!(matches!(&q, Query::Or(_, b) if matches!(**b, Query::And(..))), "{q:?}");
        assert_eq!(q.to_string(), "{ .a = 1 } || { .b = 2 } && { .c = 3 }");
        // Parentheses that change the grouping are kept, and only those.
        let q = parse("{ ((.a = 1 || .b = 2)) && (.c = 3 && .d = 4) }").unwrap();
        assert_eq!(q.to_string(), "{ (.a = 1 || .b = 2) && (.c = 3 && .d = 4) }");
        assert_eq!(parse(&q.to_string()).unwrap(), q);
    }

    #[test]
    fn a_long_chain_writes_back_to_text_that_parses() {
        // Found by the fuzzer: each operator of a chain was written in its own
        // parentheses, nesting the text past the parser's limit.
        for op in ["||", "&&"] {
            let inner = vec![".a = 1"; 200].join(&format!(" {op} "));
            let q = parse(&format!("{{ {inner} }}")).unwrap();
            assert_eq!(parse(&q.to_string()).unwrap(), q);
            let outer = vec!["{ .a = 1 }"; 200].join(&format!(" {op} "));
            let q = parse(&outer).unwrap();
            assert_eq!(q.to_string(), outer);
            assert_eq!(parse(&q.to_string()).unwrap(), q);
        }
    }

    #[test]
    fn durations() {
        for (text, ns) in [("100ms", 100_000_000), ("1.5s", 1_500_000_000), ("2m", 120_000_000_000), ("3us", 3000)] {
            let q = parse(&format!("{{ duration > {text} }}")).unwrap();
            assert_eq!(
                q,
                Query::Spanset(cond(Field::Intrinsic(Intrinsic::Duration), Op::Gt, Literal::Duration(ns))),
                "{text}"
            );
        }
    }

    #[test]
    fn errors_say_where_and_what() {
        let cases = [
            ("{ name = }", 10, "a quoted string"),
            ("{ name \"x\" }", 8, "an operator"),
            ("{ status > error }", 12, "status with = or !="),
            ("{ duration > 5 }", 14, "a duration"),
            ("{ duration > 5parsecs }", 14, "a duration"),
            ("{ name = \"x\" ", 14, "\"}\""),
            ("name = \"x\"", 1, "conditions go inside braces"),
            ("{ foo = 1 }", 3, "a condition"),
            ("{ .a = 1 } &&", 14, "a spanset"),
            ("{ .a = 1 } { .b = 2 }", 12, "the end of the filter"),
            ("{ .a =~ \"(\" }", 9, "a valid regular expression"),
            ("{ .a > true }", 8, "true or false with = or !="),
            ("{ .a = 1 & .b = 2 }", 10, "\"&&\""),
            ("{ kind = serverr }", 10, "a span kind"),
            ("{ .a = 99999999999999999999999999 }", 8, "a number"),
        ];
        for (src, column, expected) in cases {
            let e = parse(src).unwrap_err();
            assert_eq!(e.column, column, "{src}: {e}");
            assert!(e.expected.contains(expected), "{src}: {e}");
        }
    }

    #[test]
    fn refuses_deep_nesting_without_overflowing() {
        let deep = format!("{}{{}}{}", "(".repeat(1000), ")".repeat(1000));
        assert!(parse(&deep).unwrap_err().expected.contains("nesting"));
        let deep = format!("{{ {} .a = 1 {} }}", "(".repeat(1000), ")".repeat(1000));
        assert!(parse(&deep).is_err());
        assert!(parse(&"x".repeat(MAX_LEN + 1)).is_err());
    }
}
