//! Full-text search for vlake over `(row id, text)` data; knows nothing of tables
//! (format-spec/fts.md).
//!
//! - [`Analyzer`]: text to terms (Unicode words, CJK bigrams, lowercasing, stop words, Snowball
//!   stemming).
//! - [`Query`]: the query syntax (terms, "phrases", prefix*, fuzzy~1, AND/OR/NOT, +/-,
//!   parentheses), analyzed into a [`Plan`].
//! - [`TextSegment`]: an inverted index with positions, in the vlake segment file layout.
//! - [`Searcher`]: BM25 over several segments with shared statistics and deleted documents
//!   left out.
//! - [`snippet`]: highlighted fragments.
//!
//! ```
//! use vlake_text::{Analyzer, AnalyzerConfig, Bm25, Part, Query, Searcher, TextSegment};
//! let analyzer = Analyzer::new(&AnalyzerConfig::default())?;
//! let segment = TextSegment::build(&analyzer, [(7, "A quick brown fox"), (8, "A lazy dog")])?;
//! let searcher = Searcher::new(vec![Part::new(segment.into(), |_| true)]);
//! let query = searcher.resolve(&Query::parse("\"quick bro*\" OR dog~1")?.plan(&analyzer), 50);
//! let hits = searcher.search(&query, 10, Bm25::default(), &|_| true);
//! assert_eq!(hits.len(), 2);
//! # Ok::<(), vlake_format::Error>(())
//! ```

mod analyzer;
mod query;
mod search;
mod segment;
mod snippet;

pub use analyzer::{Analyzer, AnalyzerConfig, Token, TokenizerKind};
pub use query::{Bool, Plan, Query, MAX_FUZZY_DISTANCE};
pub use search::{Bm25, Hit, Part, Resolved, Searcher};
pub use segment::{TextMeta, TextSegment, KIND};
pub use snippet::{snippet, SnippetOptions};
