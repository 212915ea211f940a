//! Splits a filter into tokens, each with the byte offset where it starts.

use crate::parser::ParseError;

/// A token.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `(`
    LParen,
    /// `)`
    RParen,
    /// `&&`
    And,
    /// `||`
    Or,
    /// A comparison operator.
    Op(crate::ast::Op),
    /// `"…"`, unescaped.
    Str(String),
    /// A number as written (sign, digits, fraction, exponent), and its unit
    /// suffix if any (`ms`, `s`, …).
    Number(String, Option<String>),
    /// A bare word: `name`, `span.http.method`, `.x`, `trace:duration`, `error`.
    Word(String),
    /// `span."quoted key"`-style attribute: scope prefix (`span`, `resource`
    /// or empty for `.`) and the unescaped key.
    QuotedAttr(String, String),
    /// End of input.
    End,
}

impl Tok {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            Tok::LBrace => "\"{\"".into(),
            Tok::RBrace => "\"}\"".into(),
            Tok::LParen => "\"(\"".into(),
            Tok::RParen => "\")\"".into(),
            Tok::And => "\"&&\"".into(),
            Tok::Or => "\"||\"".into(),
            Tok::Op(o) => format!("\"{}\"", o.as_str()),
            Tok::Str(s) => format!("the string {s:?}"),
            Tok::Number(n, u) => format!("\"{n}{}\"", u.as_deref().unwrap_or("")),
            Tok::Word(w) => format!("\"{w}\""),
            Tok::QuotedAttr(p, k) => format!("the attribute {p}.{k:?}"),
            Tok::End => "the end of the filter".into(),
        }
    }
}

/// Characters that end a bare word.
fn ends_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '{' | '}' | '(' | ')' | '=' | '!' | '<' | '>' | '~' | '&' | '|' | '"')
}

/// Reads a quoted string starting at `start` (the opening quote); returns it
/// unescaped and the offset after the closing quote.
fn string(src: &str, start: usize) -> Result<(String, usize), ParseError> {
    let mut out = String::new();
    let mut chars = src[start + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        let at = start + 1 + i;
        match c {
            '"' => return Ok((out, at + 1)),
            '\\' => match chars.next() {
                Some((_, '"')) => out.push('"'),
                Some((_, '\\')) => out.push('\\'),
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, other)) => {
                    return Err(ParseError::at(
                        src,
                        at,
                        "an escape (\\\", \\\\, \\n, \\t or \\r)",
                        format!("\"\\{other}\""),
                    ))
                }
                None => return Err(ParseError::at(src, at, "a closing quote", "the end of the filter")),
            },
            c => out.push(c),
        }
    }
    Err(ParseError::at(src, start, "a closing quote for this string", "the end of the filter"))
}

/// Splits `src` into tokens with their byte offsets; the last is [`Tok::End`].
pub fn tokens(src: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    use crate::ast::Op;
    let mut out = Vec::new();
    let b = src.as_bytes();
    let mut i = 0;
    while i < src.len() {
        let c = src[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let two = src.get(i..i + 2).unwrap_or("");
        let (tok, len) = match (c, two) {
            (_, "&&") => (Tok::And, 2),
            (_, "||") => (Tok::Or, 2),
            (_, "!=") => (Tok::Op(Op::Ne), 2),
            (_, ">=") => (Tok::Op(Op::Ge), 2),
            (_, "<=") => (Tok::Op(Op::Le), 2),
            (_, "=~") => (Tok::Op(Op::Re), 2),
            (_, "!~") => (Tok::Op(Op::NotRe), 2),
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('=', _) => (Tok::Op(Op::Eq), 1),
            ('>', _) => (Tok::Op(Op::Gt), 1),
            ('<', _) => (Tok::Op(Op::Lt), 1),
            ('"', _) => {
                let (s, end) = string(src, i)?;
                out.push((i, Tok::Str(s)));
                i = end;
                continue;
            }
            ('&' | '|' | '!' | '~', _) => {
                let expected = match c {
                    '&' => "\"&&\"",
                    '|' => "\"||\"",
                    _ => "an operator (=, !=, >, >=, <, <=, =~, !~)",
                };
                return Err(ParseError::at(src, i, expected, format!("\"{c}\"")));
            }
            (c, _) if c.is_ascii_digit() || (c == '-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) => {
                let (tok, end) = number(src, i);
                out.push((i, tok));
                i = end;
                continue;
            }
            _ => {
                // A word, possibly a scope prefix followed by a quoted key.
                let mut end = i;
                for (j, ch) in src[i..].char_indices() {
                    if ends_word(ch) {
                        break;
                    }
                    end = i + j + ch.len_utf8();
                }
                let word = &src[i..end];
                if b.get(end) == Some(&b'"') && matches!(word, "span." | "resource." | ".") {
                    let (key, after) = string(src, end)?;
                    out.push((i, Tok::QuotedAttr(word.trim_end_matches('.').to_owned(), key)));
                    i = after;
                    continue;
                }
                (Tok::Word(word.to_owned()), end - i)
            }
        };
        out.push((i, tok));
        i += len;
    }
    out.push((src.len(), Tok::End));
    Ok(out)
}

/// Reads a number (and a unit suffix) at `start`.
fn number(src: &str, start: usize) -> (Tok, usize) {
    let b = src.as_bytes();
    let mut i = start;
    if b[i] == b'-' {
        i += 1;
    }
    let digits = |i: &mut usize| {
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
    };
    digits(&mut i);
    if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
        i += 1;
        digits(&mut i);
    }
    // An exponent (`1e-7`), but not the start of a unit.
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        if b.get(j).is_some_and(u8::is_ascii_digit) {
            i = j;
            digits(&mut i);
        }
    }
    let num = src[start..i].to_owned();
    let mut end = i;
    for (j, ch) in src[i..].char_indices() {
        if !(ch.is_alphanumeric()) {
            break;
        }
        end = i + j + ch.len_utf8();
    }
    let unit = (end > i).then(|| src[i..end].to_owned());
    (Tok::Number(num, unit), end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Op;

    #[test]
    fn splits_a_filter() {
        let t: Vec<Tok> = tokens(r#"{ span.http.status_code >= 500 && .x =~ "a\"b" } || {duration>1.5s}"#)
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        assert_eq!(
            t,
            vec![
                Tok::LBrace,
                Tok::Word("span.http.status_code".into()),
                Tok::Op(Op::Ge),
                Tok::Number("500".into(), None),
                Tok::And,
                Tok::Word(".x".into()),
                Tok::Op(Op::Re),
                Tok::Str("a\"b".into()),
                Tok::RBrace,
                Tok::Or,
                Tok::LBrace,
                Tok::Word("duration".into()),
                Tok::Op(Op::Gt),
                Tok::Number("1.5".into(), Some("s".into())),
                Tok::RBrace,
                Tok::End,
            ]
        );
    }

    #[test]
    fn quoted_attribute_names() {
        let t = tokens(r#"span."my key" = 1"#).unwrap();
        assert_eq!(t[0], (0, Tok::QuotedAttr("span".into(), "my key".into())));
    }

    #[test]
    fn reports_where_a_string_is_left_open() {
        let e = tokens(r#"{ name = "abc }"#).unwrap_err();
        assert_eq!(e.column, 10);
        assert!(e.to_string().contains("closing quote"), "{e}");
    }
}
