//! Highlighted snippets of matching text (format-spec/fts.md#snippets).

use std::collections::BTreeSet;

use crate::analyzer::Analyzer;

/// How snippets look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnippetOptions {
    /// Longest snippet, in characters of the text (tags and ellipses not counted).
    pub max_chars: usize,
    /// Put before a match.
    pub pre_tag: String,
    /// Put after a match.
    pub post_tag: String,
}

impl Default for SnippetOptions {
    /// 200 characters, `<b>` and `</b>`.
    fn default() -> Self {
        Self {
            max_chars: 200,
            pre_tag: "<b>".into(),
            post_tag: "</b>".into(),
        }
    }
}

/// `text` with every token whose term is in `terms` wrapped in the tags. A text longer than
/// `max_chars` is cut to the window of that many characters, starting at a token, that holds
/// the most matches (the first such window), with `…` where text was left out.
pub fn snippet(analyzer: &Analyzer, text: &str, terms: &BTreeSet<String>, options: &SnippetOptions) -> String {
    let tokens = analyzer.analyze(text);
    let matches: Vec<(usize, usize)> = tokens
        .iter()
        .filter(|t| terms.contains(&t.text))
        .map(|t| (t.start, t.end))
        .collect();
    let char_len = |a: usize, b: usize| text[a..b].chars().count();
    let (mut from, mut to) = (0, text.len());
    if char_len(0, text.len()) > options.max_chars {
        // Windows start at a token; the best holds the most whole matches.
        let starts: Vec<usize> = if tokens.is_empty() {
            vec![0]
        } else {
            tokens.iter().map(|t| t.start).collect()
        };
        let end_of = |start: usize| {
            text[start..]
                .char_indices()
                .nth(options.max_chars)
                .map_or(text.len(), |(i, _)| start + i)
        };
        let (best, _) = starts
            .iter()
            .map(|s| (*s, matches.iter().filter(|(a, b)| a >= s && *b <= end_of(*s)).count()))
            .fold((0, 0), |best, (s, n)| if n > best.1 { (s, n) } else { best });
        // Centre the window's matches, starting at a token.
        let inside: Vec<&(usize, usize)> = matches
            .iter()
            .filter(|(a, b)| *a >= best && *b <= end_of(best))
            .collect();
        if let (Some(first), Some(last)) = (inside.first(), inside.last()) {
            let slack = options.max_chars.saturating_sub(char_len(first.0, last.1)) / 2;
            let back = text[..first.0]
                .char_indices()
                .rev()
                .nth(slack.saturating_sub(1))
                .map_or(0, |(i, _)| i);
            from = starts
                .iter()
                .copied()
                .find(|s| *s >= back)
                .unwrap_or(first.0)
                .min(first.0);
        }
        to = end_of(from);
        // A window reaching the end starts early enough to fill it.
        if to == text.len() {
            let back = text
                .char_indices()
                .rev()
                .nth(options.max_chars.saturating_sub(1))
                .map_or(0, |(i, _)| i);
            from = starts.iter().copied().find(|s| *s >= back).unwrap_or(from).min(from);
        }
        // Do not cut a word at the end.
        if let Some(t) = tokens.iter().find(|t| t.start < to && t.end > to) {
            to = t.start;
        }
    }
    let mut out = String::new();
    if from > 0 {
        out.push('…');
    }
    let mut at = from;
    for &(a, b) in matches.iter().filter(|(a, b)| *a >= from && *b <= to) {
        out.push_str(&text[at..a]);
        out.push_str(&options.pre_tag);
        out.push_str(&text[a..b]);
        out.push_str(&options.post_tag);
        at = b;
    }
    let tail = &text[at..to];
    out.push_str(if to < text.len() { tail.trim_end() } else { tail });
    if to < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AnalyzerConfig;

    #[test]
    fn highlights_and_windows() {
        let a = Analyzer::new(&AnalyzerConfig::default()).unwrap();
        let terms: BTreeSet<String> = ["dog".to_string(), "run".to_string()].into();
        let opts = SnippetOptions::default();
        assert_eq!(
            snippet(&a, "Dogs are running; a cat sleeps.", &terms, &opts),
            "<b>Dogs</b> are <b>running</b>; a cat sleeps."
        );
        let text = "one two three four five six seven dog eight nine ten eleven twelve";
        let short = SnippetOptions {
            max_chars: 20,
            ..SnippetOptions::default()
        };
        assert_eq!(snippet(&a, text, &terms, &short), "…seven <b>dog</b> eight nine…");
        assert_eq!(
            snippet(&a, "no match here at all, really none", &terms, &short),
            "no match here at all…"
        );
    }
}
