//! The parsed form of a filter. `Display` writes the canonical text of a query,
//! which parses back to the same value (a property test holds it to that).

use std::fmt;

/// A whole filter: spansets joined by `&&` and `||`.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// `{ … }`: some span of the trace matches the expression.
    Spanset(SpanExpr),
    /// Both sides match (possibly through different spans).
    And(Box<Query>, Box<Query>),
    /// Either side matches.
    Or(Box<Query>, Box<Query>),
}

/// What one span must satisfy.
#[derive(Clone, Debug, PartialEq)]
pub enum SpanExpr {
    /// `{}`: every span.
    All,
    /// One comparison.
    Cond(Cond),
    /// Both.
    And(Box<SpanExpr>, Box<SpanExpr>),
    /// Either.
    Or(Box<SpanExpr>, Box<SpanExpr>),
}

/// `field op literal`.
#[derive(Clone, Debug, PartialEq)]
pub struct Cond {
    /// Left side.
    pub field: Field,
    /// Operator.
    pub op: Op,
    /// Right side.
    pub value: Literal,
}

/// Where an attribute is looked up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `span.x`
    Span,
    /// `resource.x`
    Resource,
    /// `.x`: the span's attribute, or else the resource's.
    Any,
}

/// Fields every span or trace has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Intrinsic {
    /// The span's name.
    Name,
    /// The span's status code.
    Status,
    /// The span's kind.
    Kind,
    /// The span's duration.
    Duration,
    /// The trace's duration (its summary's).
    TraceDuration,
    /// The root span's name.
    TraceRootName,
    /// The root span's service.
    TraceRootService,
}

impl Intrinsic {
    /// Its canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Intrinsic::Name => "name",
            Intrinsic::Status => "status",
            Intrinsic::Kind => "kind",
            Intrinsic::Duration => "duration",
            Intrinsic::TraceDuration => "trace:duration",
            Intrinsic::TraceRootName => "trace:rootName",
            Intrinsic::TraceRootService => "trace:rootService",
        }
    }

    /// Whether it is a property of the whole trace, not of one span.
    pub fn is_trace_level(self) -> bool {
        matches!(self, Intrinsic::TraceDuration | Intrinsic::TraceRootName | Intrinsic::TraceRootService)
    }
}

/// The left side of a condition.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// An intrinsic.
    Intrinsic(Intrinsic),
    /// An attribute in a scope.
    Attr(Scope, String),
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `=~` (whole value)
    Re,
    /// `!~`
    NotRe,
}

impl Op {
    /// Its spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Re => "=~",
            Op::NotRe => "!~",
        }
    }
}

/// Span status codes, as OTLP numbers them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// 0
    Unset = 0,
    /// 1
    Ok = 1,
    /// 2
    Error = 2,
}

/// Span kinds, as OTLP numbers them (1 = internal … 5 = consumer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 0
    Unspecified = 0,
    /// 1
    Internal = 1,
    /// 2
    Server = 2,
    /// 3
    Client = 3,
    /// 4
    Producer = 4,
    /// 5
    Consumer = 5,
}

impl Kind {
    /// All kinds, by OTLP number.
    pub const ALL: [Kind; 6] =
        [Kind::Unspecified, Kind::Internal, Kind::Server, Kind::Client, Kind::Producer, Kind::Consumer];

    /// Its name in a query.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unspecified => "unspecified",
            Kind::Internal => "internal",
            Kind::Server => "server",
            Kind::Client => "client",
            Kind::Producer => "producer",
            Kind::Consumer => "consumer",
        }
    }
}

impl StatusCode {
    /// Its name in a query.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// The right side of a condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `"text"`
    Str(String),
    /// `42`, `-3`
    Int(i64),
    /// `1.5`
    Float(f64),
    /// `true`, `false`
    Bool(bool),
    /// `150ms`, in nanoseconds.
    Duration(u64),
    /// `error`, `ok`, `unset`
    Status(StatusCode),
    /// `server`, `client`, …
    Kind(Kind),
    /// `nil`: the attribute is absent (`=`) or present (`!=`).
    Nil,
}

/// How tightly an operand must bind where it is written: `||` binds loosest,
/// `&&` tighter, a spanset or condition tightest. The text is written with
/// parentheses only where the operand binds looser than its place needs
/// (chains parse left to right), so it nests no deeper than the text it was
/// parsed from: wrapping every operator nested a long `a || b || c …` chain
/// one level per operator, past the parser's nesting limit.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Binding {
    Or,
    And,
    Atom,
}

/// Writes `a op b` (`op` binding as `own`) where `need` is required: a left
/// operand at `own`, a right one one step tighter.
fn write_binary<T: WriteBound>(
    f: &mut fmt::Formatter<'_>,
    need: Binding,
    own: Binding,
    op: &str,
    a: &T,
    b: &T,
) -> fmt::Result {
    let right = if own == Binding::Or { Binding::And } else { Binding::Atom };
    if own < need {
        f.write_str("(")?;
    }
    a.write_bound(f, own)?;
    write!(f, " {op} ")?;
    b.write_bound(f, right)?;
    if own < need {
        f.write_str(")")?;
    }
    Ok(())
}

/// A node written so that it binds at least as tightly as `need`.
trait WriteBound {
    fn write_bound(&self, f: &mut fmt::Formatter<'_>, need: Binding) -> fmt::Result;
}

impl WriteBound for Query {
    fn write_bound(&self, f: &mut fmt::Formatter<'_>, need: Binding) -> fmt::Result {
        match self {
            Query::Spanset(SpanExpr::All) => f.write_str("{ }"),
            Query::Spanset(e) => write!(f, "{{ {e} }}"),
            Query::And(a, b) => write_binary(f, need, Binding::And, "&&", &**a, &**b),
            Query::Or(a, b) => write_binary(f, need, Binding::Or, "||", &**a, &**b),
        }
    }
}

impl WriteBound for SpanExpr {
    fn write_bound(&self, f: &mut fmt::Formatter<'_>, need: Binding) -> fmt::Result {
        match self {
            SpanExpr::All => f.write_str("true"),
            SpanExpr::Cond(c) => write!(f, "{c}"),
            SpanExpr::And(a, b) => write_binary(f, need, Binding::And, "&&", &**a, &**b),
            SpanExpr::Or(a, b) => write_binary(f, need, Binding::Or, "||", &**a, &**b),
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_bound(f, Binding::Or)
    }
}

impl fmt::Display for SpanExpr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_bound(f, Binding::Or)
    }
}

impl fmt::Display for Cond {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.field, self.op.as_str(), self.value)
    }
}

/// Whether an attribute name can be written bare (`span.http.method`) or
/// needs quotes (`span."my key"`).
pub fn is_bare_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':' | '@' | '$'))
        && !name.starts_with('.')
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Intrinsic(i) => f.write_str(i.as_str()),
            Field::Attr(scope, name) => {
                f.write_str(match scope {
                    Scope::Span => "span.",
                    Scope::Resource => "resource.",
                    Scope::Any => ".",
                })?;
                if is_bare_name(name) {
                    f.write_str(name)
                } else {
                    write_quoted(f, name)
                }
            }
        }
    }
}

fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c => write!(f, "{c}")?,
        }
    }
    f.write_str("\"")
}

impl fmt::Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Str(s) => write_quoted(f, s),
            Literal::Int(i) => write!(f, "{i}"),
            // `{:?}` keeps a decimal point (1.0, not 1) and round-trips exactly.
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::Bool(b) => write!(f, "{b}"),
            Literal::Duration(ns) => write!(f, "{ns}ns"),
            Literal::Status(s) => f.write_str(s.as_str()),
            Literal::Kind(k) => f.write_str(k.as_str()),
            Literal::Nil => f.write_str("nil"),
        }
    }
}
