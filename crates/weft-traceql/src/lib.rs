//! The TraceQL subset weft answers, in three steps:
//!
//! 1. [`lexer`] splits a filter into tokens, each with its byte position;
//! 2. [`parser`] builds a [`Query`] (the [`ast`]), and on bad input says where
//!    and what it expected (`at column 14: expected an operator …, found "foo"`);
//! 3. [`matcher`] compiles a query (regexes, literal types) into a [`Filter`]
//!    that tests spans and traces through the [`SpanLike`]/[`TraceLike`]
//!    traits, so the store can run it on spans read in place, on Arrow rows of a
//!    block, or on decoded spans alike.
//!
//! What the subset holds (see `docs/api.md` for the user's version):
//! spansets `{ … }` joined by `&&`/`||` and grouped with parentheses; inside a
//! spanset, conditions joined by `&&`/`||`; fields `span.x`, `resource.x`,
//! unscoped `.x` (span or resource), intrinsics `name`, `status`, `kind`,
//! `duration`, `trace:duration`, `trace:rootName`, `trace:rootService`;
//! operators `= != > >= < <= =~ !~` (regexes match the whole value); literals:
//! strings, integers, floats, booleans, durations (`100ms`, `1.5s`), `nil`,
//! status (`error|ok|unset`) and kind (`server|client|…`) names.

pub mod ast;
pub mod lexer;
pub mod matcher;
pub mod parser;

pub use ast::{Field, Intrinsic, Literal, Op, Query, Scope, SpanExpr};
pub use matcher::{AttrValue, Filter, Pruning, SpanLike, TraceLike};
pub use parser::{parse, parse_field, ParseError};
