//! Full-text indexes and search over a string column (format-spec/fts.md).
//!
//! An `fts` index is an IndexEntry like a vector index: segment files under `_indexes/<id>/`
//! covering some data files. A search ranks the live rows of covered files through the
//! segments and the rows of every other data file through segments made at query time from
//! their text, all with one set of BM25 statistics, so results equal those of one index over
//! every live row.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, Float32Array, RecordBatch, StringArray};
use arrow_schema::{DataType as ArrowType, Field as ArrowField};
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vlake_format::{DataFile, DataType, Error, Field, IndexEntry, Result};
use vlake_text::{
    snippet, Analyzer, AnalyzerConfig, Bm25, Hit, Part, Query, Resolved, Searcher, SnippetOptions, TextSegment,
};

use crate::hits::{append_columns, covered_live_rows, default_columns, matching_rows, MAX_K};
use crate::index::{load_segment, run_blocking, IndexOptions, IndexType, Segment};
use crate::session::{CacheKind, SessionOptions};
use crate::{Predicate, ScanTask, Table};

/// Name of the score column of full-text and hybrid search results.
pub const SCORE: &str = "_score";
/// Name of the highlighted-snippet column of full-text search results.
pub const SNIPPET: &str = "_snippet";
/// The `index_type` of full-text indexes.
pub(crate) const FTS: &str = "fts";

/// Parameters recorded in a full-text index entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct TextParams {
    pub analyzer: AnalyzerConfig,
}

impl TextParams {
    fn from_entry(entry: &IndexEntry) -> Result<Self> {
        let value = serde_json::Value::Object(entry.params.clone().into_iter().collect());
        serde_json::from_value(value)
            .map_err(|e| Error::corrupt(format!("index '{}'", entry.name), format!("bad parameters: {e}")))
    }
}

/// The string field named `column`, or a clear error.
fn text_field(table: &Table, column: &str) -> Result<Field> {
    let field = table.table_schema().field(column)?;
    match field.data_type {
        DataType::Utf8 | DataType::LargeUtf8 => Ok(field.clone()),
        _ => Err(Error::invalid(format!(
            "column '{column}' is not a string column (it is {}); full-text search needs utf8 or large_utf8",
            field.to_arrow(false).data_type()
        ))),
    }
}

/// The non-null texts of the live rows of `file`, with their row ids.
async fn file_texts(table: &Table, file: &DataFile, field: &Field) -> Result<Vec<(u64, String)>> {
    let task = ScanTask::of_file(file, vec![field.clone()], true);
    let mut out = Vec::new();
    let mut stream = task.execute(table.location(), table.session()).await?;
    while let Some(batch) = stream.try_next().await? {
        let texts = arrow_cast::cast(batch.column(0), &ArrowType::Utf8)?;
        let texts = texts.as_string::<i32>();
        let ids = batch.column(1).as_primitive::<UInt64Type>();
        for i in 0..texts.len() {
            if texts.is_valid(i) {
                out.push((ids.value(i), texts.value(i).to_string()));
            }
        }
    }
    Ok(out)
}

/// In-memory full-text segments over the live rows of data files no index covers, by table
/// URI, data file, deletion file, field and analyzer: none of them ever changes.
struct FileSegments;

impl CacheKind for FileSegments {
    type Key = (String, String, Option<String>, i32, String);
    type Value = Arc<TextSegment>;
    const NAME: &'static str = "text_file_segments";

    fn capacity(options: &SessionOptions) -> usize {
        options.index_cache_entries
    }
}

/// An in-memory segment over the live rows of `file` (for files no index covers), from the
/// session's cache when it was built before.
async fn file_segment(table: &Table, file: &DataFile, field: &Field, analyzer: &Analyzer) -> Result<Arc<TextSegment>> {
    let key = (
        table.uri().to_string(),
        file.path.clone(),
        file.deletion.as_ref().map(|d| d.path.clone()),
        field.id,
        format!("{:?}", analyzer.config()),
    );
    table
        .session()
        .cache::<FileSegments>()
        .get_or_load(key, async {
            let texts = file_texts(table, file, field).await?;
            let analyzer = analyzer.clone();
            Ok(Arc::new(
                run_blocking(move || TextSegment::build(&analyzer, texts.iter().map(|(id, t)| (*id, t.as_str()))))
                    .await?,
            ))
        })
        .await
}

/// Builds a segment over the live rows of `files`.
async fn build_segment(table: &Table, files: &[&DataFile], field: &Field, analyzer: &Analyzer) -> Result<Vec<u8>> {
    let mut texts = Vec::new();
    for f in files {
        texts.extend(file_texts(table, f, field).await?);
    }
    let analyzer = analyzer.clone();
    run_blocking(move || TextSegment::build(&analyzer, texts.iter().map(|(id, t)| (*id, t.as_str())))?.write()).await
}

impl Table {
    /// Builds a full-text index over every data file (called by `create_index`).
    pub(crate) async fn create_text_index(&self, opts: &IndexOptions, name: String) -> Result<Table> {
        let field = text_field(self, &opts.column)?;
        let analyzer = Analyzer::new(&opts.analyzer)?;
        let files: Vec<&DataFile> = self.manifest().data_files.iter().collect();
        let bytes = build_segment(self, &files, &field, &analyzer).await?;
        let params = TextParams {
            analyzer: opts.analyzer.clone(),
        };
        self.commit_new_index(Uuid::new_v4(), name, IndexType::Fts, field.id, &params, &files, bytes)
            .await
    }

    /// Adds a segment over the files `entry` does not cover (called by `update_index`).
    pub(crate) async fn update_text_index(&self, entry: &IndexEntry, field: &Field) -> Result<Table> {
        let params = TextParams::from_entry(entry)?;
        let analyzer = Analyzer::new(&params.analyzer)?;
        let files = self.uncovered_files(&entry.covered_files);
        if files.is_empty() {
            return Ok(self.clone());
        }
        let bytes = build_segment(self, &files, field, &analyzer).await?;
        self.commit_index_update(entry, &files, Some(bytes)).await
    }

    /// Starts a full-text search of `column` (a string column) for `query`, in the query syntax
    /// of format-spec/fts.md: terms, `"phrases"`, `prefix*`, `"phrase prefix*"`, `fuzzy~1`,
    /// `AND`, `OR`, `NOT`, `+`/`-` and parentheses.
    pub fn full_text_search(&self, column: &str, query: &str) -> TextSearch {
        TextSearch {
            table: self.clone(),
            column: column.to_string(),
            query: query.to_string(),
            k: 10,
            filter: None,
            columns: None,
            with_row_id: false,
            snippet: None,
            bm25: Bm25::default(),
            max_expansions: 50,
            index_name: None,
        }
    }
}

/// A full-text search being set up; run it with [`TextSearch::execute`].
#[derive(Clone, Debug)]
pub struct TextSearch {
    table: Table,
    column: String,
    query: String,
    k: usize,
    filter: Option<Predicate>,
    columns: Option<Vec<String>>,
    with_row_id: bool,
    snippet: Option<SnippetOptions>,
    bm25: Bm25,
    max_expansions: usize,
    index_name: Option<String>,
}

/// What a search reads: the analyzer and every part with its live documents.
struct Corpus {
    analyzer: Analyzer,
    searcher: Searcher,
}

/// The corpora of table versions, by table URI, version, commit id, field and index.
struct Corpora;

impl CacheKind for Corpora {
    type Key = (String, u64, Uuid, i32, Option<Uuid>);
    type Value = Arc<Corpus>;
    const NAME: &'static str = "text_corpora";

    fn capacity(options: &SessionOptions) -> usize {
        options.index_cache_entries
    }
}

impl TextSearch {
    /// The table searched.
    pub(crate) fn table(&self) -> &Table {
        &self.table
    }

    /// Number of results (default 10).
    pub fn limit(mut self, k: usize) -> Self {
        self.k = k;
        self
    }

    /// Only rows matching this SQL filter (applied before ranking; BM25 statistics still count
    /// every live row).
    pub fn filter_sql(self, sql: &str) -> Result<Self> {
        Ok(self.filter(Predicate::parse(sql)?))
    }

    /// Only rows matching `filter`.
    pub fn filter(mut self, filter: Predicate) -> Self {
        self.filter = Some(filter);
        self
    }

    /// Columns to return (default: all but vector columns).
    pub fn columns(mut self, columns: &[impl AsRef<str>]) -> Self {
        self.columns = Some(columns.iter().map(|c| c.as_ref().to_string()).collect());
        self
    }

    /// Add `_rowid`.
    pub fn with_row_id(mut self, yes: bool) -> Self {
        self.with_row_id = yes;
        self
    }

    /// Add `_snippet`: the searched text with matches highlighted (default options: 200
    /// characters, `<b>`…`</b>`).
    pub fn snippet(self, yes: bool) -> Self {
        self.snippet_options(yes.then(SnippetOptions::default))
    }

    /// Add `_snippet` with these options (`None`: no snippet).
    pub fn snippet_options(mut self, options: Option<SnippetOptions>) -> Self {
        self.snippet = options;
        self
    }

    /// BM25 parameters (default `k1` 1.2, `b` 0.75).
    pub fn bm25(mut self, k1: f64, b: f64) -> Self {
        self.bm25 = Bm25 { k1, b };
        self
    }

    /// Most terms a prefix or fuzzy term expands to (default 50).
    pub fn max_expansions(mut self, n: usize) -> Self {
        self.max_expansions = n.max(1);
        self
    }

    /// Use the full-text index called `name` (default: the newest on the column).
    pub fn index(mut self, name: &str) -> Self {
        self.index_name = Some(name.to_string());
        self
    }

    /// The searched column and the parsed query; fails on bad input before anything is read.
    fn validate(&self) -> Result<(Field, Query)> {
        let field = text_field(&self.table, &self.column)?;
        if self.k == 0 || self.k > MAX_K {
            return Err(Error::invalid(format!(
                "k must be between 1 and {MAX_K}, not {}",
                self.k
            )));
        }
        if !(self.bm25.k1 >= 0.0 && (0.0..=1.0).contains(&self.bm25.b)) {
            return Err(Error::invalid(format!(
                "BM25 needs k1 >= 0 and 0 <= b <= 1, not k1 = {} and b = {}",
                self.bm25.k1, self.bm25.b
            )));
        }
        Ok((field, Query::parse(&self.query)?))
    }

    /// The full-text index serving the search: the named one, else the newest on the column.
    fn serving_index(&self, field: &Field) -> Result<Option<&IndexEntry>> {
        let mut on_column = self
            .table
            .manifest()
            .indexes
            .iter()
            .rev()
            .filter(|i| i.index_type == FTS && i.field_ids.first() == Some(&field.id));
        match &self.index_name {
            Some(name) => on_column
                .find(|i| &i.name == name)
                .map(Some)
                .ok_or_else(|| Error::not_found(format!("full-text index '{name}' on column '{}'", self.column))),
            None => Ok(on_column.next()),
        }
    }

    /// The corpus of this version, from the session's cache when it was built before.
    async fn corpus(&self, field: &Field) -> Result<Arc<Corpus>> {
        let entry = self.serving_index(field)?;
        let m = self.table.manifest();
        let key = (
            self.table.uri().to_string(),
            m.version,
            m.transaction.id,
            field.id,
            entry.map(|e| e.id),
        );
        let corpora = self.table.session().cache::<Corpora>();
        if let Some(hit) = corpora.get(&key) {
            return Ok(hit);
        }
        let config = match entry {
            Some(e) => TextParams::from_entry(e)?.analyzer,
            None => AnalyzerConfig::default(),
        };
        let analyzer = Analyzer::new(&config)?;
        let mut parts = Vec::new();
        let location = self.table.location();
        if let Some(entry) = entry {
            let live = covered_live_rows(&self.table, entry).await?;
            for path in &entry.files {
                let Segment::Text(segment) = load_segment(location, self.table.session(), path).await? else {
                    return Err(Error::corrupt(path, "a full-text index holds a vector segment"));
                };
                if segment.meta().analyzer != config {
                    return Err(Error::corrupt(
                        path,
                        format!("segment was analyzed differently from what index '{}' says", entry.name),
                    ));
                }
                parts.push(Part::new(segment, |id| live.contains(id)));
            }
        }
        for file in self.table.uncovered_files(entry.map_or(&[], |e| &e.covered_files)) {
            parts.push(Part::new(
                file_segment(&self.table, file, field, &analyzer).await?,
                |_| true,
            ));
        }
        let corpus = Arc::new(Corpus {
            analyzer,
            searcher: Searcher::new(parts),
        });
        corpora.insert(key, corpus.clone());
        Ok(corpus)
    }

    async fn resolve(&self) -> Result<(Arc<Corpus>, Resolved)> {
        let (field, query) = self.validate()?;
        let corpus = self.corpus(&field).await?;
        let resolved = corpus
            .searcher
            .resolve(&query.plan(&corpus.analyzer), self.max_expansions);
        Ok((corpus, resolved))
    }

    /// The best rows: row ids and BM25 scores, highest first (ties by row id).
    pub async fn hits(&self) -> Result<Vec<Hit>> {
        let (corpus, resolved) = self.resolve().await?;
        self.rank(&corpus, &resolved).await
    }

    async fn rank(&self, corpus: &Corpus, resolved: &Resolved) -> Result<Vec<Hit>> {
        let allow = match &self.filter {
            Some(f) => Some(matching_rows(&self.table, f).await?),
            None => None,
        };
        if allow.as_ref().is_some_and(|s| s.is_empty()) || *resolved == Resolved::Nothing {
            return Ok(vec![]);
        }
        let allow_fn = |id: u64| allow.as_ref().is_none_or(|s| s.contains(&id));
        Ok(corpus.searcher.search(resolved, self.k, self.bm25, &allow_fn))
    }

    /// How the search will run, for plan displays. Fails as the search would on bad input.
    pub fn describe(&self) -> Result<String> {
        let (field, _) = self.validate()?;
        let how = match self.serving_index(&field)? {
            Some(e) => format!("index {} (fts) + query-time analysis of uncovered files", e.name),
            None => "no index: every file analyzed at query time".to_string(),
        };
        let mut out = format!("full-text {how}, query={:?}, k={}", self.query, self.k);
        if let Some(f) = &self.filter {
            out.push_str(&format!(", prefilter={f}"));
        }
        Ok(out)
    }

    /// Runs the search: the requested columns of the best rows, highest score first, with
    /// `_score` (and `_snippet`, `_rowid` when asked).
    pub async fn execute(&self) -> Result<RecordBatch> {
        let (corpus, resolved) = self.resolve().await?;
        let hits = self.rank(&corpus, &resolved).await?;
        let ids: Vec<u64> = hits.iter().map(|h| h.row_id).collect();
        let columns = self.columns.clone().unwrap_or_else(|| default_columns(&self.table));
        let mut fetch = columns.clone();
        if self.snippet.is_some() && !fetch.contains(&self.column) {
            fetch.push(self.column.clone());
        }
        let rows = self.table.take_rows(&ids, &fetch).await?;
        let mut extra: Vec<(ArrowField, ArrayRef)> = vec![(
            ArrowField::new(SCORE, ArrowType::Float32, false),
            Arc::new(Float32Array::from_iter_values(hits.iter().map(|h| h.score))),
        )];
        if let Some(options) = &self.snippet {
            let texts = arrow_cast::cast(
                rows.column_by_name(&self.column)
                    .ok_or_else(|| Error::Internal("take lost the text column".into()))?,
                &ArrowType::Utf8,
            )?;
            let texts = texts.as_string::<i32>();
            let terms = resolved.positive_terms();
            let snippets: StringArray = (0..texts.len())
                .map(|i| {
                    texts
                        .is_valid(i)
                        .then(|| snippet(&corpus.analyzer, texts.value(i), &terms, options))
                })
                .collect();
            extra.push((ArrowField::new(SNIPPET, ArrowType::Utf8, true), Arc::new(snippets)));
        }
        let rows = rows.project(
            &columns
                .iter()
                .map(|c| rows.schema().index_of(c))
                .collect::<std::result::Result<Vec<_>, _>>()?,
        )?;
        append_columns(rows, extra, self.with_row_id.then_some(&ids[..]))
    }
}
