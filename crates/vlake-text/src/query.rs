//! The full-text query syntax (format-spec/fts.md#query-syntax) and its analysis into a plan.
//!
//! ```text
//! query   := clause+ with "OR" optional between clauses     (juxtaposition means OR)
//! clause  := unary ("AND" unary)*
//! unary   := ("NOT" | "-") unary | "+" unary | primary
//! primary := "(" query ")" | '"' words '"' | '"' words prefix* '"' | word | prefix* | word~ | word~N
//! ```
//! `AND` binds tighter than `OR`; `+x` makes a clause required and `-x` or `NOT x` excludes
//! matches; a backslash escapes the next character. A query needs at least one clause that is
//! not negated.

use vlake_format::{Error, Result};

use crate::analyzer::{Analyzer, Token};

/// The largest fuzzy edit distance.
pub const MAX_FUZZY_DISTANCE: u8 = 2;

/// The deepest nesting of parentheses a query may have: the parser and the query tree recurse
/// once per level, so input may not choose the depth.
pub const MAX_NESTING: usize = 64;

/// How many characters of a query an error message quotes.
const QUOTED_CHARS: usize = 80;

/// A parsed query, before analysis.
#[derive(Clone, Debug, PartialEq)]
pub enum Query {
    /// A word, analyzed like the indexed text (several tokens make a phrase).
    Word(String),
    /// The words of a quoted phrase.
    Phrase(String),
    /// A quoted phrase whose last word is a prefix (`"quick bro*"`, match_phrase_prefix).
    PhrasePrefix(String),
    /// Terms starting with the word (lowercased, not stemmed).
    Prefix(String),
    /// Terms within an edit distance of the word (lowercased, not stemmed).
    Fuzzy {
        /// The word.
        word: String,
        /// The largest Levenshtein distance (0 to 2).
        distance: u8,
    },
    /// Boolean combination.
    Bool(Bool<Query>),
}

/// Clauses of a boolean query: a document matches when it matches every `must` clause and,
/// if there is none, at least one `should` clause, and no `must_not` clause. Its score is the
/// sum of the scores of the positive clauses it matches.
#[derive(Clone, Debug, PartialEq)]
pub struct Bool<Q> {
    /// Required clauses.
    pub must: Vec<Q>,
    /// Optional clauses.
    pub should: Vec<Q>,
    /// Excluding clauses.
    pub must_not: Vec<Q>,
}

impl<Q> Default for Bool<Q> {
    fn default() -> Self {
        Self {
            must: vec![],
            should: vec![],
            must_not: vec![],
        }
    }
}

impl<Q> Bool<Q> {
    fn is_negative_only(&self) -> bool {
        self.must.is_empty() && self.should.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Lexeme {
    Open,
    Close,
    And,
    Or,
    Not,
    Plus,
    Minus,
    Quoted {
        text: String,
        prefix: bool,
    },
    Word {
        text: String,
        prefix: bool,
        fuzzy: Option<u8>,
    },
}

fn syntax(query: &str, at: usize, what: impl std::fmt::Display) -> Error {
    let quoted = match query.char_indices().nth(QUOTED_CHARS) {
        Some((cut, _)) => format!("{:?}...", &query[..cut]),
        None => format!("{query:?}"),
    };
    Error::invalid(format!("full-text query {quoted}: {what} at character {}", at + 1))
}

fn lex(query: &str) -> Result<Vec<(usize, Lexeme)>> {
    // Positions in messages count characters: `i` is the index of a character.
    let chars: Vec<(usize, char)> = query.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = (i, chars[i].1);
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push((at, Lexeme::Open));
                i += 1;
            }
            ')' => {
                out.push((at, Lexeme::Close));
                i += 1;
            }
            '+' | '-' if chars.get(i + 1).is_some_and(|(_, n)| !n.is_whitespace()) => {
                out.push((at, if c == '+' { Lexeme::Plus } else { Lexeme::Minus }));
                i += 1;
            }
            '"' => {
                let mut text = String::new();
                let mut j = i + 1;
                let mut closed = false;
                let mut star = false;
                while j < chars.len() {
                    match chars[j].1 {
                        '\\' if j + 1 < chars.len() => {
                            text.push(chars[j + 1].1);
                            star = false;
                            j += 2;
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        ch => {
                            star = ch == '*';
                            text.push(ch);
                            j += 1;
                        }
                    }
                }
                if !closed {
                    return Err(syntax(query, at, "unterminated quoted phrase"));
                }
                if chars.get(j + 1).is_some_and(|(_, n)| *n == '~') {
                    return Err(syntax(query, j + 1, "phrase slop (\"...\"~N) is not supported"));
                }
                if star {
                    text.pop();
                }
                out.push((at, Lexeme::Quoted { text, prefix: star }));
                i = j + 1;
            }
            _ => {
                // A word: up to whitespace, a parenthesis or a quote; `\` escapes.
                let mut text = String::new();
                let mut special: Vec<(usize, char)> = vec![];
                let mut j = i;
                while j < chars.len() {
                    let ch = chars[j].1;
                    if ch.is_whitespace() || matches!(ch, '(' | ')' | '"') {
                        break;
                    }
                    if ch == '\\' && j + 1 < chars.len() {
                        text.push(chars[j + 1].1);
                        j += 2;
                        continue;
                    }
                    if matches!(ch, '*' | '~') {
                        special.push((text.len(), ch));
                    }
                    text.push(ch);
                    j += 1;
                }
                out.push((at, word(query, at, text, &special)?));
                i = j;
            }
        }
    }
    Ok(out)
}

/// A word lexeme from its text and the unescaped `*` and `~` in it (byte offsets in `text`).
fn word(query: &str, at: usize, mut text: String, special: &[(usize, char)]) -> Result<Lexeme> {
    if special.is_empty() {
        return Ok(match text.as_str() {
            "AND" => Lexeme::And,
            "OR" => Lexeme::Or,
            "NOT" => Lexeme::Not,
            _ => Lexeme::Word {
                text,
                prefix: false,
                fuzzy: None,
            },
        });
    }
    let (offset, ch) = special[0];
    if ch == '*' {
        if special.len() > 1 || offset + 1 != text.len() {
            return Err(syntax(
                query,
                at,
                "'*' is only allowed once, at the end of a word (prefix*)",
            ));
        }
        text.pop();
        if text.is_empty() {
            return Err(syntax(query, at, "a prefix needs at least one character before '*'"));
        }
        return Ok(Lexeme::Word {
            text,
            prefix: true,
            fuzzy: None,
        });
    }
    let suffix = text[offset + 1..].to_string();
    text.truncate(offset);
    let distance = match suffix.as_str() {
        "" => MAX_FUZZY_DISTANCE,
        s => s
            .parse::<u8>()
            .ok()
            .filter(|d| *d <= MAX_FUZZY_DISTANCE)
            .ok_or_else(|| syntax(query, at, format!("fuzzy distance must be 0, 1 or 2, not '{s}'")))?,
    };
    if text.is_empty() {
        return Err(syntax(query, at, "'~' needs a word before it (word~1)"));
    }
    Ok(Lexeme::Word {
        text,
        prefix: false,
        fuzzy: Some(distance),
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Occur {
    Must,
    Should,
    MustNot,
}

struct Parser<'a> {
    query: &'a str,
    lexemes: Vec<(usize, Lexeme)>,
    next: usize,
    /// Parentheses open around the current position.
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Lexeme> {
        self.lexemes.get(self.next).map(|(_, l)| l)
    }

    fn at(&self) -> usize {
        self.lexemes
            .get(self.next)
            .map_or(self.query.chars().count(), |(at, _)| *at)
    }

    fn disjunction(&mut self) -> Result<Query> {
        let mut clauses = vec![];
        loop {
            match self.peek() {
                None | Some(Lexeme::Close) => break,
                Some(Lexeme::Or) if clauses.is_empty() => {
                    return Err(syntax(self.query, self.at(), "OR needs a clause before it"))
                }
                Some(Lexeme::Or) => {
                    self.next += 1;
                    if matches!(self.peek(), None | Some(Lexeme::Close | Lexeme::Or | Lexeme::And)) {
                        return Err(syntax(self.query, self.at(), "OR needs a clause after it"));
                    }
                }
                _ => clauses.push(self.conjunction()?),
            }
        }
        if clauses.is_empty() {
            return Err(syntax(self.query, self.at(), "expected a term"));
        }
        Ok(combine(clauses, Occur::Should))
    }

    fn conjunction(&mut self) -> Result<(Occur, Query)> {
        let mut clauses = vec![self.unary()?];
        while self.peek() == Some(&Lexeme::And) {
            self.next += 1;
            if matches!(self.peek(), None | Some(Lexeme::Close | Lexeme::Or | Lexeme::And)) {
                return Err(syntax(self.query, self.at(), "AND needs a clause after it"));
            }
            clauses.push(self.unary()?);
        }
        if clauses.len() == 1 {
            return Ok(clauses.remove(0));
        }
        Ok((Occur::Should, combine(clauses, Occur::Must)))
    }

    /// A primary after any run of prefixes (a loop, so a long run cannot exhaust the stack):
    /// any `NOT` or `-` in the run excludes, else any `+` requires.
    fn unary(&mut self) -> Result<(Occur, Query)> {
        let mut occur = Occur::Should;
        loop {
            match self.peek() {
                Some(Lexeme::Not | Lexeme::Minus) => occur = Occur::MustNot,
                Some(Lexeme::Plus) if occur != Occur::MustNot => occur = Occur::Must,
                Some(Lexeme::Plus) => {}
                _ => return Ok((occur, self.primary()?)),
            }
            self.next += 1;
        }
    }

    fn primary(&mut self) -> Result<Query> {
        let at = self.at();
        let Some((_, lexeme)) = self.lexemes.get(self.next).cloned() else {
            return Err(syntax(self.query, at, "expected a term at the end"));
        };
        self.next += 1;
        match lexeme {
            Lexeme::Open => {
                if self.depth >= MAX_NESTING {
                    return Err(syntax(
                        self.query,
                        at,
                        format!("parentheses nest deeper than {MAX_NESTING} levels"),
                    ));
                }
                self.depth += 1;
                let inner = self.disjunction()?;
                self.depth -= 1;
                if self.peek() != Some(&Lexeme::Close) {
                    return Err(syntax(self.query, at, "unclosed '('"));
                }
                self.next += 1;
                Ok(inner)
            }
            Lexeme::Quoted { text, prefix: false } => Ok(Query::Phrase(text)),
            Lexeme::Quoted { text, prefix: true } => Ok(Query::PhrasePrefix(text)),
            Lexeme::Word { text, prefix: true, .. } => Ok(Query::Prefix(text)),
            Lexeme::Word {
                text,
                fuzzy: Some(distance),
                ..
            } => Ok(Query::Fuzzy { word: text, distance }),
            Lexeme::Word { text, .. } => Ok(Query::Word(text)),
            Lexeme::Close => Err(syntax(self.query, at, "unexpected ')'")),
            Lexeme::And | Lexeme::Or => Err(syntax(self.query, at, "expected a term, not an operator")),
            Lexeme::Not | Lexeme::Plus | Lexeme::Minus => Err(syntax(self.query, at, "expected a term")),
        }
    }
}

/// Clauses with their occurrence (`default` for those without an explicit one) as one query;
/// a clause that only excludes is folded into the parent's exclusions.
fn combine(clauses: Vec<(Occur, Query)>, default: Occur) -> Query {
    if clauses.len() == 1 && clauses[0].0 == Occur::Should {
        return clauses
            .into_iter()
            .next()
            .map(|(_, q)| q)
            .unwrap_or(Query::Bool(Bool::default()));
    }
    let mut b = Bool::default();
    for (occur, q) in clauses {
        let occur = if occur == Occur::Should { default } else { occur };
        match (occur, q) {
            (Occur::MustNot, q) => b.must_not.push(q),
            (_, Query::Bool(inner)) if inner.is_negative_only() => b.must_not.extend(inner.must_not),
            (Occur::Must, q) => b.must.push(q),
            (_, q) => b.should.push(q),
        }
    }
    Query::Bool(b)
}

impl Query {
    /// Parses the query syntax; a syntax error is `invalid_input` naming the character where it
    /// is.
    pub fn parse(query: &str) -> Result<Query> {
        let mut parser = Parser {
            query,
            lexemes: lex(query)?,
            next: 0,
            depth: 0,
        };
        if parser.lexemes.is_empty() {
            return Err(Error::invalid("full-text query is empty"));
        }
        let q = parser.disjunction()?;
        if parser.next < parser.lexemes.len() {
            return Err(syntax(query, parser.at(), "unexpected ')'"));
        }
        if matches!(&q, Query::Bool(b) if b.is_negative_only()) {
            return Err(Error::invalid(format!(
                "full-text query {query:?} only excludes: it needs a term that is not negated (a -b, a AND NOT b)"
            )));
        }
        Ok(q)
    }

    /// The query analyzed with `analyzer`: index terms in place of words.
    pub fn plan(&self, analyzer: &Analyzer) -> Plan {
        match self {
            Query::Word(w) | Query::Phrase(w) => phrase_or_term(analyzer.analyze(w)),
            Query::PhrasePrefix(text) => {
                let tokens = analyzer.analyze(text);
                let last_word_start = text.trim_end().rfind(char::is_whitespace).map_or(0, |i| i + 1);
                let (head, prefix, position) = match tokens.last() {
                    Some(t) if t.start >= last_word_start => {
                        let prefix = analyzer.normalize(&text[t.start..t.end]);
                        (tokens[..tokens.len() - 1].to_vec(), prefix, t.position)
                    }
                    last => (
                        tokens.clone(),
                        analyzer.normalize(text[last_word_start..].trim()),
                        last.map_or(0, |t| t.position + 1),
                    ),
                };
                if prefix.is_empty() {
                    return phrase_or_term(head);
                }
                if head.is_empty() {
                    return Plan::Prefix(prefix);
                }
                let base = head[0].position;
                Plan::PhrasePrefix {
                    terms: head.into_iter().map(|t| (t.text, t.position - base)).collect(),
                    prefix,
                    offset: position - base,
                }
            }
            Query::Prefix(w) => Plan::Prefix(analyzer.normalize(w)),
            Query::Fuzzy { word, distance } => Plan::Fuzzy {
                term: analyzer.normalize(word),
                distance: *distance,
            },
            Query::Bool(b) => {
                let keep = |qs: &[Query]| -> Vec<Plan> {
                    qs.iter()
                        .map(|q| q.plan(analyzer))
                        .filter(|p| *p != Plan::Nothing)
                        .collect()
                };
                let b = Bool {
                    must: keep(&b.must),
                    should: keep(&b.should),
                    must_not: keep(&b.must_not),
                };
                if b.is_negative_only() {
                    Plan::Nothing
                } else {
                    Plan::Bool(b)
                }
            }
        }
    }
}

fn phrase_or_term(tokens: Vec<Token>) -> Plan {
    match tokens.len() {
        0 => Plan::Nothing,
        1 => Plan::Term(tokens.into_iter().next().map(|t| t.text).unwrap_or_default()),
        _ => {
            let base = tokens[0].position;
            Plan::Phrase(tokens.into_iter().map(|t| (t.text, t.position - base)).collect())
        }
    }
}

/// An analyzed query.
#[derive(Clone, Debug, PartialEq)]
pub enum Plan {
    /// Matches nothing (a query whose words are all stop words).
    Nothing,
    /// One index term.
    Term(String),
    /// Index terms at relative positions.
    Phrase(Vec<(String, u32)>),
    /// A phrase whose term at relative position `offset` is any term starting with `prefix`.
    PhrasePrefix {
        /// The fixed terms and their relative positions.
        terms: Vec<(String, u32)>,
        /// The prefix of the last term.
        prefix: String,
        /// Its relative position.
        offset: u32,
    },
    /// Any term starting with this.
    Prefix(String),
    /// Any term within `distance` edits of `term`.
    Fuzzy {
        /// The normalized word.
        term: String,
        /// The largest Levenshtein distance.
        distance: u8,
    },
    /// Boolean combination.
    Bool(Bool<Plan>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnalyzerConfig;

    fn w(s: &str) -> Query {
        Query::Word(s.into())
    }

    #[test]
    fn precedence_and_occurrence() {
        let q = Query::parse("a b AND c -d").unwrap();
        let want = Query::Bool(Bool {
            must: vec![],
            should: vec![
                w("a"),
                Query::Bool(Bool {
                    must: vec![w("b"), w("c")],
                    ..Bool::default()
                }),
            ],
            must_not: vec![w("d")],
        });
        assert_eq!(q, want);
        let q = Query::parse("+a (b OR NOT c)").unwrap();
        assert_eq!(
            q,
            Query::Bool(Bool {
                must: vec![w("a")],
                should: vec![Query::Bool(Bool {
                    should: vec![w("b")],
                    must_not: vec![w("c")],
                    ..Bool::default()
                })],
                must_not: vec![],
            })
        );
        assert_eq!(
            Query::parse("a AND NOT b").unwrap(),
            Query::Bool(Bool {
                must: vec![w("a")],
                must_not: vec![w("b")],
                ..Bool::default()
            })
        );
    }

    #[test]
    fn modifiers() {
        assert_eq!(Query::parse("dog*").unwrap(), Query::Prefix("dog".into()));
        assert_eq!(
            Query::parse("dgo~1").unwrap(),
            Query::Fuzzy {
                word: "dgo".into(),
                distance: 1
            }
        );
        assert_eq!(
            Query::parse("dgo~").unwrap(),
            Query::Fuzzy {
                word: "dgo".into(),
                distance: 2
            }
        );
        assert_eq!(Query::parse("\"big dog\"").unwrap(), Query::Phrase("big dog".into()));
        assert_eq!(
            Query::parse("\"big do*\"").unwrap(),
            Query::PhrasePrefix("big do".into())
        );
        assert_eq!(
            Query::parse(r"wi\-fi a\*").unwrap(),
            Query::Bool(Bool {
                should: vec![w("wi-fi"), w("a*")],
                ..Bool::default()
            })
        );
        assert_eq!(Query::parse("wi-fi").unwrap(), w("wi-fi"));
    }

    #[test]
    fn syntax_errors_say_where() {
        for (q, msg) in [
            ("\"open", "unterminated quoted phrase at character 1"),
            ("a AND", "AND needs a clause after it at character 6"),
            ("(a b", "unclosed '(' at character 1"),
            ("a b)", "unexpected ')' at character 4"),
            ("a*b", "'*' is only allowed once"),
            ("dog~3", "fuzzy distance must be 0, 1 or 2, not '3'"),
            ("NOT a", "only excludes"),
            ("OR a", "OR needs a clause before it"),
            ("\"a b\"~2", "phrase slop"),
            ("   ", "empty"),
        ] {
            let err = Query::parse(q).unwrap_err().to_string();
            assert!(err.contains(msg), "{q}: {err}");
        }
    }

    #[test]
    fn deep_input_is_refused_or_parsed_without_recursion() {
        let deep = format!("{}a{}", "(".repeat(20_000), ")".repeat(20_000));
        let err = Query::parse(&deep).unwrap_err().to_string();
        assert!(err.contains("deeper than 64 levels at character 65"), "{err}");
        assert!(err.len() < 300, "{err}");
        let nested = format!("{}a{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(Query::parse(&nested).unwrap(), w("a"));
        let nots = format!("a {}b", "NOT ".repeat(20_000));
        let excluded = Query::Bool(Bool {
            should: vec![w("a")],
            must_not: vec![w("b")],
            ..Bool::default()
        });
        assert_eq!(Query::parse(&nots).unwrap(), excluded);
        assert_eq!(Query::parse(&format!("a {}b", "-".repeat(20_000))).unwrap(), excluded);
        assert_eq!(Query::parse("a +-b").unwrap(), Query::parse("a -+b").unwrap(),);
    }

    #[test]
    fn plans_analyze_words() {
        let a = Analyzer::new(&AnalyzerConfig::default()).unwrap();
        assert_eq!(Query::parse("Running").unwrap().plan(&a), Plan::Term("run".into()));
        assert_eq!(Query::parse("the").unwrap().plan(&a), Plan::Nothing);
        assert_eq!(
            Query::parse("\"house of cards\"").unwrap().plan(&a),
            Plan::Phrase(vec![("hous".into(), 0), ("card".into(), 2)])
        );
        assert_eq!(
            Query::parse("\"house of ca*\"").unwrap().plan(&a),
            Plan::PhrasePrefix {
                terms: vec![("hous".into(), 0)],
                prefix: "ca".into(),
                offset: 2
            }
        );
        assert_eq!(Query::parse("Runn*").unwrap().plan(&a), Plan::Prefix("runn".into()));
    }
}
