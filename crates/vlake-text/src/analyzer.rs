//! Analyzers: text to index terms (format-spec/fts.md#analyzers).
//!
//! Words are found by Unicode word segmentation (UAX #29, the `unicode-segmentation` crate);
//! runs of CJK ideographs and kana, which UAX #29 splits into single characters, become
//! overlapping bigrams (as Lucene's CJK analyzer does). Then, in this order: tokens longer than
//! `max_token_length` bytes are dropped, tokens are lowercased, stop words are dropped, and
//! tokens are stemmed with a Snowball stemmer (the `frostem` crate). Positions count the tokens
//! the segmentation produced, so a dropped token leaves a gap that phrases respect.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;
use vlake_format::{Error, Result};

/// How text is split into tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenizerKind {
    /// Unicode words (UAX #29) holding a letter or digit; CJK runs as bigrams.
    #[default]
    Unicode,
    /// Runs of non-whitespace characters.
    Whitespace,
}

impl std::str::FromStr for TokenizerKind {
    type Err = Error;

    /// `unicode` or `whitespace`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "unicode" => Ok(Self::Unicode),
            "whitespace" => Ok(Self::Whitespace),
            other => Err(Error::invalid(format!(
                "unknown tokenizer '{other}': use unicode or whitespace"
            ))),
        }
    }
}

/// What an analyzer does; recorded in a full-text index's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalyzerConfig {
    /// The tokenizer.
    pub tokenizer: TokenizerKind,
    /// Lowercase tokens (Unicode lowercase mapping).
    pub lowercase: bool,
    /// Drop the stop words of this language (`english`), or keep every token.
    pub stop_words: Option<String>,
    /// Stem with the Snowball stemmer of this language (`english`, `french`, ...), or not at all.
    pub stemmer: Option<String>,
    /// Drop tokens longer than this many bytes (before lowercasing).
    pub max_token_length: usize,
}

impl Default for AnalyzerConfig {
    /// Unicode words, lowercased, English stop words dropped, English stemming, tokens of at most
    /// 40 bytes.
    fn default() -> Self {
        Self {
            tokenizer: TokenizerKind::Unicode,
            lowercase: true,
            stop_words: Some("english".into()),
            stemmer: Some("english".into()),
            max_token_length: 40,
        }
    }
}

impl AnalyzerConfig {
    /// No stop words and no stemming: lowercased Unicode words.
    pub fn simple() -> Self {
        Self {
            stop_words: None,
            stemmer: None,
            ..Self::default()
        }
    }
}

/// The stop words of Lucene's `EnglishAnalyzer` (also Elasticsearch's `_english_`).
const ENGLISH_STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
];

/// The Snowball languages this build carries.
const STEMMERS: [&str; 9] = [
    "dutch",
    "english",
    "french",
    "german",
    "italian",
    "portuguese",
    "russian",
    "spanish",
    "swedish",
];

/// One token: an index term and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    /// The term.
    pub text: String,
    /// Its position: the number of tokens before it in the segmentation.
    pub position: u32,
    /// Byte offset of its first character in the text.
    pub start: usize,
    /// Byte offset just past its last character.
    pub end: usize,
}

/// A ready analyzer.
#[derive(Clone)]
pub struct Analyzer {
    config: AnalyzerConfig,
    stop_words: HashSet<&'static str>,
    stemmer: Option<frostem::Stemmer>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("config", &self.config).finish()
    }
}

impl Analyzer {
    /// The analyzer `config` describes, or `invalid_input` for an unknown language or a zero
    /// token length.
    pub fn new(config: &AnalyzerConfig) -> Result<Self> {
        let stop_words = match config.stop_words.as_deref() {
            None => HashSet::new(),
            Some("english") => ENGLISH_STOP_WORDS.into_iter().collect(),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "no stop words for language '{other}' (available: english)"
                )))
            }
        };
        let stemmer = match config.stemmer.as_deref() {
            None => None,
            Some(lang) if STEMMERS.contains(&lang) => Some(
                frostem::Stemmer::try_from_name(lang).map_err(|e| Error::Internal(format!("stemmer '{lang}': {e}")))?,
            ),
            Some(other) => {
                return Err(Error::invalid(format!(
                    "no stemmer for language '{other}' (available: {})",
                    STEMMERS.join(", ")
                )))
            }
        };
        if config.max_token_length == 0 {
            return Err(Error::invalid("max_token_length must be at least 1"));
        }
        Ok(Self {
            config: config.clone(),
            stop_words,
            stemmer,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The tokens of `text`, in order.
    pub fn analyze(&self, text: &str) -> Vec<Token> {
        let mut out = Vec::new();
        self.for_each_token(text, |t| out.push(t));
        out
    }

    /// Calls `f` with each token of `text`, in order.
    pub fn for_each_token(&self, text: &str, mut f: impl FnMut(Token)) {
        let mut position = 0u32;
        let mut emit = |start: usize, end: usize| {
            let raw = &text[start..end];
            let pos = position;
            position += 1;
            if raw.len() > self.config.max_token_length {
                return;
            }
            let term = self.normalize(raw);
            if self.stop_words.contains(term.as_str()) {
                return;
            }
            let term = match &self.stemmer {
                Some(s) => s.stem(&term).into_owned(),
                None => term,
            };
            f(Token {
                text: term,
                position: pos,
                start,
                end,
            });
        };
        match self.config.tokenizer {
            TokenizerKind::Whitespace => {
                let mut start = None;
                for (i, c) in text.char_indices() {
                    match (c.is_whitespace(), start) {
                        (true, Some(s)) => {
                            emit(s, i);
                            start = None;
                        }
                        (false, None) => start = Some(i),
                        _ => {}
                    }
                }
                if let Some(s) = start {
                    emit(s, text.len());
                }
            }
            TokenizerKind::Unicode => {
                // A run of CJK characters (one word each in UAX #29) becomes bigrams; a run of
                // one character stays a unigram.
                let mut run: Vec<(usize, usize)> = Vec::new();
                let flush = |run: &mut Vec<(usize, usize)>, emit: &mut dyn FnMut(usize, usize)| {
                    match run.len() {
                        0 => {}
                        1 => emit(run[0].0, run[0].1),
                        _ => {
                            for pair in run.windows(2) {
                                emit(pair[0].0, pair[1].1);
                            }
                        }
                    }
                    run.clear();
                };
                for (start, word) in text.split_word_bound_indices() {
                    let end = start + word.len();
                    if word.chars().all(is_cjk) {
                        run.push((start, end));
                        continue;
                    }
                    flush(&mut run, &mut emit);
                    if word.chars().any(char::is_alphanumeric) {
                        emit(start, end);
                    }
                }
                flush(&mut run, &mut emit);
            }
        }
    }

    /// `word` as the analyzer's lowercasing leaves it (no stop words, no stemming): how prefix
    /// and fuzzy query terms are prepared.
    pub fn normalize(&self, word: &str) -> String {
        if self.config.lowercase {
            word.to_lowercase()
        } else {
            word.to_string()
        }
    }
}

/// Han ideographs, Hiragana and Katakana (Hangul words are space-separated and stay whole).
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xF900..=0xFAFF    // CJK Compatibility Ideographs
        | 0x20000..=0x2FA1F) // Extensions B..F, Compatibility Supplement
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(config: &AnalyzerConfig, text: &str) -> Vec<(String, u32)> {
        Analyzer::new(config)
            .unwrap()
            .analyze(text)
            .into_iter()
            .map(|t| (t.text, t.position))
            .collect()
    }

    #[test]
    fn english_default_lowercases_drops_stop_words_and_stems() {
        let got = terms(&AnalyzerConfig::default(), "The Running dogs of Paris, quickly!");
        let want = [("run", 1), ("dog", 2), ("pari", 4), ("quick", 5)];
        assert_eq!(got, want.map(|(t, p)| (t.to_string(), p)));
    }

    #[test]
    fn cjk_runs_become_bigrams_with_offsets() {
        let analyzer = Analyzer::new(&AnalyzerConfig::simple()).unwrap();
        let tokens = analyzer.analyze("東京都 に 行く Tokyo");
        let got: Vec<&str> = tokens.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(got, ["東京", "京都", "に", "行く", "tokyo"]);
        assert_eq!(&"東京都 に 行く Tokyo"[tokens[1].start..tokens[1].end], "京都");
    }

    #[test]
    fn whitespace_tokenizer_keeps_punctuation_and_long_tokens_are_dropped() {
        let config = AnalyzerConfig {
            tokenizer: TokenizerKind::Whitespace,
            max_token_length: 5,
            ..AnalyzerConfig::simple()
        };
        assert_eq!(
            terms(&config, " Wi-Fi  rocks loooooong x"),
            [("wi-fi".to_string(), 0), ("rocks".to_string(), 1), ("x".to_string(), 3)]
        );
    }

    #[test]
    fn unknown_languages_are_refused() {
        let bad = AnalyzerConfig {
            stemmer: Some("klingon".into()),
            ..AnalyzerConfig::default()
        };
        assert!(Analyzer::new(&bad).unwrap_err().to_string().contains("klingon"));
        let bad = AnalyzerConfig {
            stop_words: Some("french".into()),
            ..AnalyzerConfig::default()
        };
        assert!(Analyzer::new(&bad).unwrap_err().to_string().contains("french"));
    }
}
