//! The vlake table format in Rust: manifests, schemas with field ids, statistics, layout, and the
//! error type shared by the crates below the engine adapters. No I/O happens here.
//!
//! The normative description is `format-spec/` at the root of the repository; each module names
//! the section it implements.

pub mod error;
pub mod layout;
pub mod manifest;
pub mod schema;
pub mod segment;

pub use error::{Error, Result};
pub use manifest::{
    BlobFile, ColumnStats, DataFile, DeletionFile, FileFormat, IndexEntry, LatestHint, Manifest, Operation, RowIdFile,
    StatValue, Tag, Transaction, VersionSummary, FORMAT_VERSION,
};
pub use schema::{DataType, Field, Schema};
