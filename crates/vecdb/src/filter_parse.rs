//! The command-line filter language, parsed by recursive descent:
//!
//! ```text
//! expr       := or
//! or         := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := FIELD ("=" | "==" | "!=" | "<" | "<=" | ">" | ">=" | "^=") VALUE
//!             | FIELD ["not"] "in" VALUE ("," VALUE)*
//! ```
//!
//! Keywords are case-insensitive; a VALUE is bare text (one word is typed as a number or
//! boolean when it looks like one; several words, as in `tags=tiger cat`, make one string, ended
//! by `and`, `or`, a comma or a parenthesis) or a `"quoted string"` (always a string; `\"`
//! escapes a quote). Bare text cannot hold parentheses, commas, quotes or operator characters, so
//! `label=nature,width>=2000` is a syntax error that points at the spot instead of a filter that
//! silently matches nothing.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::filter::Filter;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Quoted(String),
    Op(&'static str),
    Open,
    Close,
    Comma,
}

/// A token and the byte offset it starts at.
type Spanned = (Tok, usize);

const OPS: [&str; 8] = ["==", "!=", ">=", "<=", "^=", "=", ">", "<"];

fn is_word_char(c: char) -> bool {
    !(c.is_whitespace() || "()\",=!<>^".contains(c))
}

/// An error pointing at byte `at` of `src` (a long filter is shown as the 80 characters around
/// the spot).
fn error_at(src: &str, at: usize, msg: impl std::fmt::Display) -> Error {
    const SHOWN: usize = 80;
    let chars: Vec<char> = src.chars().collect();
    let col = src[..at.min(src.len())].chars().count();
    let start = col.saturating_sub(SHOWN / 2).min(chars.len().saturating_sub(SHOWN));
    let end = (start + SHOWN).min(chars.len());
    let (pre, post) = (if start > 0 { "…" } else { "" }, if end < chars.len() { "…" } else { "" });
    let shown: String = chars[start..end].iter().collect();
    let caret = col - start + pre.chars().count();
    Error::InvalidFilter(format!("{msg}\n  {pre}{shown}{post}\n  {}^", " ".repeat(caret)))
}

fn tokenize(src: &str) -> Result<Vec<Spanned>> {
    let mut out = Vec::new();
    let mut it = src.char_indices().peekable();
    while let Some(&(i, c)) = it.peek() {
        if c.is_whitespace() {
            it.next();
        } else if c == '(' || c == ')' || c == ',' {
            it.next();
            out.push((
                match c {
                    '(' => Tok::Open,
                    ')' => Tok::Close,
                    _ => Tok::Comma,
                },
                i,
            ));
        } else if c == '"' {
            it.next();
            let mut s = String::new();
            let mut closed = false;
            while let Some((_, c)) = it.next() {
                match c {
                    '\\' if it.peek().is_some_and(|&(_, n)| n == '"' || n == '\\') => {
                        s.push(it.next().expect("peeked").1);
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => s.push(c),
                }
            }
            if !closed {
                return Err(error_at(src, i, "unterminated quoted string"));
            }
            out.push((Tok::Quoted(s), i));
        } else if let Some(op) = OPS.iter().find(|op| src[i..].starts_with(**op)) {
            for _ in 0..op.len() {
                it.next();
            }
            out.push((Tok::Op(op), i));
        } else if is_word_char(c) {
            let mut end = i;
            while let Some(&(j, c)) = it.peek() {
                if !is_word_char(c) {
                    break;
                }
                end = j + c.len_utf8();
                it.next();
            }
            out.push((Tok::Word(src[i..end].to_string()), i));
        } else {
            return Err(error_at(src, i, format!("unexpected '{c}'")));
        }
    }
    Ok(out)
}

/// Deepest nesting of parentheses and `not` a filter may have: the parser, the matcher and the
/// drop of a `Filter` recurse once per level, and a hostile filter string ("((((…" or
/// "not not not …") must get an error, not overflow a thread's stack.
pub(crate) const MAX_DEPTH: usize = 64;

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Spanned>,
    pos: usize,
    /// Parentheses and `not`s open at the current token.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }
    /// Byte offset of the current token (the end of the input past the last one).
    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(self.src.len(), |t| t.1)
    }
    fn keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }
    fn err(&self, msg: impl std::fmt::Display) -> Error {
        error_at(self.src, self.at(), msg)
    }

    fn or(&mut self) -> Result<Filter> {
        let mut parts = vec![self.and()?];
        while self.keyword("or") {
            self.pos += 1;
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one") } else { Filter::Or(parts) })
    }

    fn and(&mut self) -> Result<Filter> {
        let mut parts = vec![self.unary()?];
        while self.keyword("and") {
            self.pos += 1;
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 { parts.pop().expect("one") } else { Filter::And(parts) })
    }

    fn unary(&mut self) -> Result<Filter> {
        let nests = self.keyword("not") || self.peek() == Some(&Tok::Open);
        if nests && self.depth == MAX_DEPTH {
            return Err(self.err(format!("nested too deeply (more than {MAX_DEPTH} levels of '(' and 'not')")));
        }
        self.depth += usize::from(nests);
        let out = self.unary_nested();
        self.depth -= usize::from(nests);
        out
    }

    fn unary_nested(&mut self) -> Result<Filter> {
        if self.keyword("not") {
            self.pos += 1;
            return Ok(Filter::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let inner = self.or()?;
            if self.peek() != Some(&Tok::Close) {
                return Err(self.err("expected ')'"));
            }
            self.pos += 1;
            return Ok(inner);
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Filter> {
        let field = match self.peek() {
            Some(Tok::Word(w)) if !["and", "or", "in"].iter().any(|k| w.eq_ignore_ascii_case(k)) => w.clone(),
            None => return Err(self.err("expected a condition such as label=cat")),
            _ => return Err(self.err("expected a field name")),
        };
        self.pos += 1;
        let negate = self.keyword("not");
        if negate {
            self.pos += 1;
        }
        if self.keyword("in") {
            self.pos += 1;
            let mut vals = vec![self.value()?];
            while self.peek() == Some(&Tok::Comma) {
                self.pos += 1;
                vals.push(self.value()?);
            }
            let f = Filter::In(field, vals);
            return Ok(if negate { Filter::Not(Box::new(f)) } else { f });
        }
        if negate {
            return Err(self.err("expected 'in' after 'not'"));
        }
        let op = match self.peek() {
            Some(Tok::Op(op)) => *op,
            _ => return Err(self.err(format!("expected an operator after '{field}': =, !=, <, <=, >, >=, ^= or in"))),
        };
        self.pos += 1;
        let at = self.at();
        let value = self.value()?;
        let num = || {
            match &value {
                Value::Number(n) => n.as_f64().filter(|f| f.is_finite()).ok_or(()),
                _ => Err(()),
            }
            .map_err(|()| error_at(self.src, at, format!("'{op}' needs a number")))
        };
        let range = |min, max, min_exclusive, max_exclusive| Filter::Range {
            field: field.clone(),
            min,
            max,
            min_exclusive,
            max_exclusive,
        };
        Ok(match op {
            "=" | "==" => Filter::Eq(field, value),
            "!=" => Filter::Not(Box::new(Filter::Eq(field, value))),
            "^=" => match value {
                Value::String(s) => Filter::Prefix(field, s),
                other => Filter::Prefix(field, other.to_string()),
            },
            ">=" => range(Some(num()?), None, false, false),
            ">" => range(Some(num()?), None, true, false),
            "<=" => range(None, Some(num()?), false, false),
            _ => range(None, Some(num()?), false, true),
        })
    }

    fn value(&mut self) -> Result<Value> {
        let v = match self.peek() {
            Some(Tok::Quoted(s)) => Value::String(s.clone()),
            Some(Tok::Word(w)) if !is_connective(w) => {
                // Several words make one value, spaces kept as written (ImageNet tags such as
                // `tiger cat`), up to a comma, a parenthesis, `and` / `or` or the end.
                let start = self.at();
                let mut end = start + w.len();
                self.pos += 1;
                while let Some((Tok::Word(next), at)) = self.toks.get(self.pos) {
                    if is_connective(next) {
                        break;
                    }
                    end = at + next.len();
                    self.pos += 1;
                }
                let text = &self.src[start..end];
                return Ok(if text.contains(char::is_whitespace) {
                    Value::String(text.to_string())
                } else {
                    typed(text)
                });
            }
            None => return Err(self.err("expected a value")),
            Some(Tok::Op(op)) => return Err(self.err(format!("expected a value, found '{op}'"))),
            _ => return Err(self.err("expected a value")),
        };
        self.pos += 1;
        Ok(v)
    }
}

/// `and` / `or`, which end a bare value.
fn is_connective(w: &str) -> bool {
    w.eq_ignore_ascii_case("and") || w.eq_ignore_ascii_case("or")
}

/// A bare word as a JSON value: integer, finite float, boolean, else string.
fn typed(w: &str) -> Value {
    match w {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = w.parse::<i64>() {
        return Value::from(i);
    }
    match w.parse::<f64>() {
        Ok(f) if f.is_finite() => Value::from(f),
        // "NaN", "inf": not numbers a range can use, kept as text (a range then reports it)
        _ => Value::String(w.to_string()),
    }
}

/// Parse a command-line filter expression (see the [module docs](self)).
pub(crate) fn parse(src: &str) -> Result<Filter> {
    let toks = tokenize(src)?;
    let mut p = Parser { src, toks, pos: 0, depth: 0 };
    let f = p.or()?;
    if p.pos < p.toks.len() {
        let hint = match p.peek() {
            Some(Tok::Comma) => " (join conditions with 'and' / 'or')",
            Some(Tok::Word(_)) | Some(Tok::Quoted(_)) => {
                " (join conditions with 'and' / 'or'; quote values with spaces)"
            }
            Some(Tok::Close) => " (no '(' to close)",
            _ => "",
        };
        return Err(p.err(format!("unexpected text after a complete condition{hint}")));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn msg(src: &str) -> String {
        match parse(src) {
            Err(Error::InvalidFilter(m)) => m,
            other => panic!("{src:?}: expected an error, got {other:?}"),
        }
    }

    #[test]
    fn or_not_parentheses_and_precedence() {
        let eq = |f: &str, v: Value| Filter::Eq(f.into(), v);
        assert_eq!(
            parse("label=nature or label=stamps").unwrap(),
            Filter::Or(vec![eq("label", json!("nature")), eq("label", json!("stamps"))])
        );
        // and binds tighter than or
        assert_eq!(
            parse("a=1 or b=2 and c=3").unwrap(),
            Filter::Or(vec![eq("a", json!(1)), Filter::And(vec![eq("b", json!(2)), eq("c", json!(3))])])
        );
        assert_eq!(
            parse("(a=1 OR b=2) and NOT c==x").unwrap(),
            Filter::And(vec![
                Filter::Or(vec![eq("a", json!(1)), eq("b", json!(2))]),
                Filter::Not(Box::new(eq("c", json!("x"))))
            ])
        );
        assert_eq!(parse(r#"label="say \"hi\"""#).unwrap(), eq("label", json!("say \"hi\"")));
        assert_eq!(parse("label=café").unwrap(), eq("label", json!("café")));
        // bare values of several words, as ImageNet tags are
        assert_eq!(
            parse("tags=tiger  cat and w=1").unwrap(),
            Filter::And(vec![eq("tags", json!("tiger  cat")), eq("w", json!(1))])
        );
        assert_eq!(
            parse("tags in tabby, tiger cat,Persian cat").unwrap(),
            Filter::In("tags".into(), vec![json!("tabby"), json!("tiger cat"), json!("Persian cat")])
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let ok = format!("{}label=cat{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let ok = format!("{}label=cat", "not ".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        for deep in [
            format!("{}label=cat{}", "(".repeat(MAX_DEPTH + 1), ")".repeat(MAX_DEPTH + 1)),
            format!("{}label=cat", "not ".repeat(1_000_000)),
            "(".repeat(1_000_000),
            "not (".repeat(100_000),
        ] {
            let e = parse(&deep).unwrap_err().to_string();
            assert!(e.contains("nested too deeply") && e.len() < 400, "{}", &e[..e.len().min(400)]);
        }
    }

    #[test]
    fn a_long_filter_shows_the_part_around_the_mistake() {
        let src = format!("{}width>=", "label=cat and ".repeat(20));
        let e = parse(&src).unwrap_err().to_string();
        let lines: Vec<&str> = e.lines().collect();
        assert!(lines[1].starts_with("  …") && !lines[1].ends_with('…'), "{e}");
        let caret = lines[2].chars().count() - 1;
        assert_eq!(lines[1].chars().nth(caret), None, "the caret is just past the end, where a value is missing: {e}");
        assert!(lines[1].chars().count() <= 2 + 1 + 80, "{e}");
    }

    #[test]
    fn mistakes_point_at_the_spot() {
        let m = msg("label=nature,width>=2000");
        assert!(m.contains("'and' / 'or'"), "{m}");
        assert!(m.ends_with(&format!("\n  {}^", " ".repeat(12))), "{m:?}");
        let m = msg("(label=cat) dog=1");
        assert!(m.contains("'and' / 'or'"), "{m}");
        assert!(msg("(label=cat").contains("expected ')'"));
        assert!(msg("label=cat)").contains("no '(' to close"));
        assert!(msg("width>=big").contains("needs a number"));
        assert!(msg("label cat").contains("expected an operator after 'label'"));
        assert!(msg("label=\"cat").contains("unterminated"));
        assert!(msg("label=>3").contains("expected a value, found '>'"));
    }
}
