//! SQL text split into statements for [`crate::sql`], and the shape of a KNN query's text.
//!
//! Parsing a statement that writes out a 384-number vector takes sqlparser about as long as the
//! index search (every number becomes a token and an expression). A query whose text, with its
//! array literals of numbers taken out, is the text of a query that kept its plan
//! ([`crate::KeptPlans`]) is therefore not parsed at all: [`parse`] hands it on as text, and
//! [`crate::sql`] reads its vector from the text and reruns the kept plan.

use datafusion::common::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::dialect::dialect_from_str;

use crate::kept::KeptPlans;

/// One statement for [`crate::sql`]: parsed (from [`parse`], or any DataFusion statement), or
/// the text of a query whose shape has a kept plan.
#[derive(Debug)]
pub struct ParsedStatement(pub(crate) Inner);

#[derive(Debug)]
pub(crate) enum Inner {
    /// A parsed statement and, when it was the whole text given, that text.
    Parsed(DfStatement, Option<String>),
    /// A query not parsed: its text and shape.
    Text(String, TextShape),
}

impl From<DfStatement> for ParsedStatement {
    fn from(statement: DfStatement) -> Self {
        Self(Inner::Parsed(statement, None))
    }
}

/// Splits SQL text into statements in the session's dialect, leaving a query whose shape has a
/// kept plan unparsed.
pub fn parse(ctx: &SessionContext, text: &str) -> Result<Vec<ParsedStatement>> {
    if let Some(shape) = TextShape::of(text) {
        let plans = ctx.state_ref().read().config().get_extension::<KeptPlans>();
        if plans.is_some_and(|p| p.knows_text(&shape.key)) {
            return Ok(vec![ParsedStatement(Inner::Text(text.to_string(), shape))]);
        }
    }
    let mut statements = parse_text(ctx, text)?;
    if statements.len() == 1 {
        if let Some(ParsedStatement(Inner::Parsed(_, whole))) = statements.first_mut() {
            *whole = Some(text.to_string());
        }
    }
    Ok(statements)
}

/// The statements of `text`, parsed by DataFusion's parser in the session's dialect.
pub(crate) fn parse_text(ctx: &SessionContext, text: &str) -> Result<Vec<ParsedStatement>> {
    let name = ctx.state_ref().read().config().options().sql_parser.dialect;
    let dialect = dialect_from_str(name.as_ref())
        .ok_or_else(|| DataFusionError::Plan(format!("unsupported SQL dialect {}", name.as_ref())))?;
    Ok(DFParser::parse_sql_with_dialect(text, dialect.as_ref())?
        .into_iter()
        .map(ParsedStatement::from)
        .collect())
}

/// A statement's text with its array literals of numbers (`[0.1, -2, 3e-1]`, outside strings,
/// quoted names and comments) written as `$1`, when they all write the same vector.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TextShape {
    /// The text with each literal replaced.
    pub key: String,
    /// The vector the literals write.
    pub vector: Vec<f32>,
    /// How many literals were replaced.
    pub literals: usize,
}

impl TextShape {
    /// The shape of one statement's text; `None` for text with no such literal, literals of
    /// different vectors, more than one statement, or what this scan does not follow
    /// (backslashes in strings, `$` parameters and dollar-quoted strings, nested comments).
    pub(crate) fn of(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        let mut key = String::with_capacity(64);
        let mut vector: Option<Vec<f32>> = None;
        let (mut literals, mut copied, mut i) = (0, 0, 0);
        while i < b.len() {
            match b[i] {
                quote @ (b'\'' | b'"' | b'`') => {
                    // A doubled quote inside is an escape: it reads as a closing and an opening.
                    let end = b[i + 1..].iter().position(|&c| c == quote)? + i + 1;
                    if b[i + 1..end].contains(&b'\\') {
                        return None;
                    }
                    i = end + 1;
                }
                b'-' if b.get(i + 1) == Some(&b'-') => {
                    i = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p + 1);
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let end = text[i + 2..].find("*/")? + i + 2;
                    if text[i + 2..end].contains("/*") {
                        return None;
                    }
                    i = end + 2;
                }
                b';' if text[i + 1..].trim().is_empty() => i += 1,
                b';' | b'$' => return None,
                b'[' => match numbers(&text[i..]) {
                    Some((len, v)) => {
                        match &vector {
                            Some(first) if *first != v => return None,
                            Some(_) => {}
                            None => vector = Some(v),
                        }
                        key.push_str(&text[copied..i]);
                        key.push_str("$1");
                        literals += 1;
                        i += len;
                        copied = i;
                    }
                    None => i += 1,
                },
                _ => i += 1,
            }
        }
        key.push_str(&text[copied..]);
        Some(Self {
            key,
            vector: vector?,
            literals,
        })
    }
}

/// The length and vector of an array literal of numbers at the start of `s` (`[` first).
fn numbers(s: &str) -> Option<(usize, Vec<f32>)> {
    let b = s.as_bytes();
    let mut i = 1;
    let mut out = Vec::new();
    let skip_space = |i: &mut usize| {
        while b.get(*i).is_some_and(u8::is_ascii_whitespace) {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        let start = i;
        if matches!(b.get(i), Some(b'-' | b'+')) {
            i += 1;
        }
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i - from
        };
        let mut count = digits(&mut i);
        if b.get(i) == Some(&b'.') {
            i += 1;
            count += digits(&mut i);
        }
        if count == 0 {
            return None;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'-' | b'+')) {
                i += 1;
            }
            if digits(&mut i) == 0 {
                return None;
            }
        }
        // As DataFusion plans a number: a double, then the vector's f32.
        out.push(s[start..i].parse::<f64>().ok()? as f32);
        skip_space(&mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') => return Some((i + 1, out)),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::TextShape;

    fn shape(text: &str) -> Option<(String, Vec<f32>, usize)> {
        TextShape::of(text).map(|s| (s.key, s.vector, s.literals))
    }

    #[test]
    fn literals_become_one_parameter() {
        assert_eq!(
            shape("SELECT id, l2_distance(v, [1, -0.5, 2e-1]) AS d FROM t ORDER BY l2_distance(v, [1,-0.5 , .2]) LIMIT 3;"),
            Some((
                "SELECT id, l2_distance(v, $1) AS d FROM t ORDER BY l2_distance(v, $1) LIMIT 3;".into(),
                vec![1.0, -0.5, 0.2],
                2
            ))
        );
        // Strings, quoted names and comments are kept as they are.
        assert_eq!(
            shape("SELECT '[1]', \"[2]\" FROM t -- [3]\n/* [4] */ ORDER BY f(v, [5]) LIMIT 1").map(|s| s.0),
            Some("SELECT '[1]', \"[2]\" FROM t -- [3]\n/* [4] */ ORDER BY f(v, $1) LIMIT 1".into())
        );
        assert_eq!(shape("SELECT 'it''s', x[1] FROM t").map(|s| s.1), Some(vec![1.0]));
    }

    #[test]
    fn what_the_scan_does_not_follow_has_no_shape() {
        for text in [
            "SELECT id FROM t",
            "SELECT f(v, [1, 2]) + f(v, [1, 3]) FROM t",
            "SELECT f(v, [1]); SELECT 2",
            "SELECT f(v, $1), [1]",
            "SELECT 'a\\'b', [1]",
            "SELECT /* /* */ */ [1]",
            "SELECT 'open [1]",
        ] {
            assert_eq!(shape(text), None, "{text}");
        }
        // Not numbers: left in the text.
        assert_eq!(
            shape("SELECT [a, 1], [1e, 2], [-, 3], [1 2], [4]").map(|s| s.2),
            Some(1)
        );
    }
}
