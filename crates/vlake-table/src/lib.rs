//! The engine-neutral vlake table: create, append, overwrite, delete and update by predicate,
//! compaction, scan with projection, filters and limits, time travel, tags, restore and cleanup,
//! vector, full-text and hybrid search, over any object store.
//!
//! ```no_run
//! # async fn demo() -> vlake_format::Result<()> {
//! use vlake_table::{Table, VersionRef};
//! let table = Table::open("/data/wordnet").await?;
//! let nouns = table.scan().columns(&["id", "gloss"]).filter_sql("pos = 'n'")?.limit(10).collect().await?;
//! let first = table.checkout(VersionRef::Version(1)).await?;
//! # Ok(()) }
//! ```

mod assign;
mod blob;
mod cleanup;
mod compact;
mod evolve;
mod hits;
mod hybrid;
mod index;
mod info;
mod merge;
mod mutate;
mod options;
mod predicate;
mod rows;
mod scan;
mod schema_json;
mod search;
mod session;
mod stats;
mod stream;
mod table;
mod take;
mod text;
mod transaction;
mod txn;
mod vector_codec;
mod vectors;
mod write;

pub use assign::{ArithOp, Assignment, ValueExpr};
pub use blob::{BlobMode, BlobReader, BlobSource};
pub use cleanup::{cleanup, CleanupOptions, CleanupReport, MIN_FILE_AGE};
pub use compact::{CompactOptions, CompactReport, OptimizeOptions, OptimizeReport};
pub use evolve::{ColumnValue, SchemaChange};
pub use hits::MAX_K;
pub use hybrid::{fuse, Fusion, HybridSearch};
pub use index::{IndexOptions, IndexType};
pub use info::{FieldInfo, FileInfo, IndexInfo, TableInfo};
pub use merge::{MergeInsert, MergeReport, WhenMatched, WhenNotMatched, WhenNotMatchedBySource};
pub use options::{HybridSearchOptions, TextSearchOptions, VectorSearchOptions};
pub use predicate::{CmpOp, Literal, Predicate};
pub use scan::{ScanPlan, ScanTask, Scanner, ROW_ID};
pub use search::{VectorSearch, DISTANCE, MAX_PROBES, MAX_REFINE};
pub use session::{CacheStats, Session, SessionOptions};
pub use stream::BatchStream;
pub use table::{Table, TableBuilder, TableConfig, VersionInfo, VersionRef, WriteMode};
pub use text::{TextSearch, SCORE, SNIPPET};
pub use transaction::Transaction;
pub use txn::{StagedFile, StagedMode, StagedWrite};
pub use vlake_format::{Error, Result};
pub use vlake_index::hnsw::HnswParams;
pub use vlake_index::ivf::IvfParams;
pub use vlake_index::{Metric, Neighbor};
pub use vlake_io::TableLocation;
pub use vlake_text::{Analyzer, AnalyzerConfig, Hit, SnippetOptions, TokenizerKind};
pub use write::{ProgressFn, WriteOptions};
