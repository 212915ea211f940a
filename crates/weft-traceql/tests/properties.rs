//! Property tests: any query written out canonically parses back to itself,
//! and no input makes the parser panic or point outside the text.

use proptest::prelude::*;
use weft_traceql::ast::{Cond, Field, Intrinsic, Kind, Literal, Op, Query, Scope, SpanExpr, StatusCode};
use weft_traceql::parse;

fn op() -> impl Strategy<Value = Op> {
    prop::sample::select(vec![Op::Eq, Op::Ne, Op::Gt, Op::Ge, Op::Lt, Op::Le, Op::Re, Op::NotRe])
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9_.]{0,12}",
        // Anything, quoted when it has to be.
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
    ]
}

/// A condition the parser accepts: the literal suits the field and operator.
fn cond() -> impl Strategy<Value = Cond> {
    let attr = (prop::sample::select(vec![Scope::Span, Scope::Resource, Scope::Any]), key(), op()).prop_flat_map(
        |(scope, key, op)| {
            let field = Field::Attr(scope, key);
            let value: BoxedStrategy<Literal> = match op {
                Op::Re | Op::NotRe => "[a-z]{0,3}(\\.\\*|\\.|[a-z])?".prop_map(Literal::Str).boxed(),
                Op::Eq | Op::Ne => prop_oneof![
                    any::<String>().prop_map(Literal::Str),
                    any::<i64>().prop_map(Literal::Int),
                    any::<f64>().prop_filter("finite", |x| x.is_finite()).prop_map(Literal::Float),
                    any::<bool>().prop_map(Literal::Bool),
                    any::<u32>().prop_map(|d| Literal::Duration(u64::from(d))),
                    Just(Literal::Nil),
                ]
                .boxed(),
                _ => prop_oneof![
                    any::<String>().prop_map(Literal::Str),
                    any::<i64>().prop_map(Literal::Int),
                    (-1e12f64..1e12).prop_map(Literal::Float),
                    any::<u64>().prop_map(Literal::Duration),
                ]
                .boxed(),
            };
            value.prop_map(move |value| Cond { field: field.clone(), op, value })
        },
    );
    let intrinsic = prop_oneof![
        (prop::sample::select(vec![Op::Eq, Op::Ne]), 0usize..3).prop_map(|(op, i)| Cond {
            field: Field::Intrinsic(Intrinsic::Status),
            op,
            value: Literal::Status([StatusCode::Unset, StatusCode::Ok, StatusCode::Error][i]),
        }),
        (prop::sample::select(vec![Op::Eq, Op::Ne]), 0usize..6).prop_map(|(op, i)| Cond {
            field: Field::Intrinsic(Intrinsic::Kind),
            op,
            value: Literal::Kind(Kind::ALL[i]),
        }),
        (prop::sample::select(vec![Intrinsic::Duration, Intrinsic::TraceDuration]), op(), any::<u64>())
            .prop_filter("no regex on durations", |(_, op, _)| !matches!(op, Op::Re | Op::NotRe))
            .prop_map(|(i, op, d)| Cond { field: Field::Intrinsic(i), op, value: Literal::Duration(d) }),
        (
            prop::sample::select(vec![Intrinsic::Name, Intrinsic::TraceRootName, Intrinsic::TraceRootService]),
            op(),
            "[a-zA-Z /]{0,8}"
        )
            .prop_map(|(i, op, s)| Cond { field: Field::Intrinsic(i), op, value: Literal::Str(s) }),
    ];
    prop_oneof![attr, intrinsic]
}

fn span_expr() -> impl Strategy<Value = SpanExpr> {
    let leaf = prop_oneof![9 => cond().prop_map(SpanExpr::Cond), 1 => Just(SpanExpr::All)];
    leaf.prop_recursive(4, 16, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| SpanExpr::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| SpanExpr::Or(Box::new(a), Box::new(b))),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    span_expr().prop_map(Query::Spanset).prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| Query::And(Box::new(a), Box::new(b))),
            (inner.clone(), inner).prop_map(|(a, b)| Query::Or(Box::new(a), Box::new(b))),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn canonical_text_parses_back(q in query()) {
        let text = q.to_string();
        let back = parse(&text).map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
        prop_assert_eq!(back, q, "{}", text);
    }

    #[test]
    fn any_text_parses_or_fails_with_a_column_inside_it(s in any::<String>()) {
        if let Err(e) = parse(&s) {
            prop_assert!(e.column >= 1 && e.column <= s.chars().count() + 1, "{} for {:?}", e, s);
        }
    }

    #[test]
    fn mangled_queries_never_panic(q in query(), cut in any::<prop::sample::Index>(), junk in "[{}()&|=!~<>\" .a-z0-9]{0,4}") {
        let text = q.to_string();
        let mut at = cut.index(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        let mangled = format!("{}{}{}", &text[..at], junk, &text[at..]);
        if let Err(e) = parse(&mangled) {
            prop_assert!(e.column <= mangled.chars().count() + 1);
        }
    }
}
