//! The engine-neutral vlake table: create, append, overwrite, scan with projection, filters and
//! limits, time travel, tags, restore and cleanup, over any object store.
//!
//! ```no_run
//! # async fn demo() -> vlake_format::Result<()> {
//! use vlake_table::{Table, VersionRef};
//! let table = Table::open("/data/wordnet").await?;
//! let nouns = table.scan().columns(&["id", "gloss"]).filter_sql("pos = 'n'")?.limit(10).collect().await?;
//! let first = table.checkout(VersionRef::Version(1)).await?;
//! # Ok(()) }
//! ```

mod cleanup;
mod predicate;
mod scan;
mod stats;
mod stream;
mod table;
mod txn;
mod vector_codec;
mod write;

pub use cleanup::CleanupReport;
pub use predicate::{CmpOp, Literal, Predicate};
pub use scan::{ScanPlan, ScanTask, Scanner, ROW_ID};
pub use stream::BatchStream;
pub use table::{Table, TableConfig, VersionInfo, VersionRef, WriteMode};
pub use vlake_format::{Error, Result};
pub use vlake_io::TableLocation;
pub use write::{ProgressFn, WriteOptions};
