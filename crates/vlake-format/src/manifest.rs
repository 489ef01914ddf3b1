//! Manifests: the complete description of one table version (format-spec/manifest.md).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::schema::Schema;

/// The newest format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Reader and writer feature of versions with deletion files (format-spec/features.md#deletion_files).
pub const DELETION_FILES: &str = "deletion_files";

/// Reader and writer feature of versions with row-id files (format-spec/features.md#row_id_files).
pub const ROW_ID_FILES: &str = "row_id_files";

/// Writer feature of versions with a primary key (format-spec/features.md#primary_key).
pub const PRIMARY_KEY: &str = "primary_key";

/// Reader and writer feature of versions whose schema gives a field an initial default
/// (format-spec/features.md#column_defaults).
pub const COLUMN_DEFAULTS: &str = "column_defaults";

/// Reader and writer feature of versions with BLOB columns (format-spec/features.md#blob_files).
pub const BLOB_FILES: &str = "blob_files";

/// Reader features this build understands (format-spec/features.md). A manifest that
/// requires any other reader feature is refused.
pub const KNOWN_READER_FEATURES: &[&str] = &[DELETION_FILES, ROW_ID_FILES, COLUMN_DEFAULTS, BLOB_FILES];

/// Writer features this build understands. A table that requires any other writer
/// feature can be read but not written.
pub const KNOWN_WRITER_FEATURES: &[&str] = &[DELETION_FILES, ROW_ID_FILES, PRIMARY_KEY, COLUMN_DEFAULTS, BLOB_FILES];

/// One version of a table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version this manifest was written with.
    pub format_version: u32,
    /// Features a reader must understand to read this version.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub reader_features: BTreeSet<String>,
    /// Features a writer must understand to commit on top of this version.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub writer_features: BTreeSet<String>,
    /// The table version, starting at 1.
    pub version: u64,
    /// The version this one was committed on top of (`None` for version 1).
    pub parent_version: Option<u64>,
    /// Commit time, milliseconds since the Unix epoch; never earlier than the parent's.
    pub timestamp_ms: i64,
    /// The table schema.
    pub schema: Schema,
    /// The largest field id ever assigned (ids of dropped fields are not reused).
    pub max_field_id: i32,
    /// Field ids of the primary-key columns, in key order (empty: no primary key). No two live
    /// rows share a key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<i32>,
    /// The first row id the next added row will get.
    pub next_row_id: u64,
    /// The data files of this version, in scan order.
    pub data_files: Vec<DataFile>,
    /// Sidecar indexes bound to this version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indexes: Vec<IndexEntry>,
    /// Free-form table properties.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, String>,
    /// The transaction that produced this version.
    pub transaction: Transaction,
}

/// What a listing of versions shows of one manifest, decoded without the rest of it (schema,
/// statistics, paths, indexes), so that listing many versions stays cheap.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionSummary {
    /// The table version.
    pub version: u64,
    /// Commit time, milliseconds since the Unix epoch.
    pub timestamp_ms: i64,
    /// The operation that produced the version.
    pub operation: Operation,
    /// Live rows (deleted rows excluded).
    pub rows: u64,
    /// Data files.
    pub files: usize,
}

impl VersionSummary {
    /// Decodes the summary of the manifest read from `path`, which must hold `expected_version`.
    pub fn decode(bytes: &[u8], path: &str, expected_version: u64) -> Result<Self> {
        #[derive(Deserialize)]
        struct Wire {
            format_version: u32,
            version: u64,
            timestamp_ms: i64,
            data_files: Vec<FileWire>,
            transaction: TransactionWire,
        }
        #[derive(Deserialize)]
        struct FileWire {
            num_rows: u64,
            #[serde(default)]
            deletion: Option<DeletionWire>,
        }
        #[derive(Deserialize)]
        struct DeletionWire {
            num_deleted: u64,
        }
        #[derive(Deserialize)]
        struct TransactionWire {
            operation: Operation,
        }
        let wire: Wire =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, format!("not a vlake manifest: {e}")))?;
        if wire.format_version == 0 || wire.format_version > FORMAT_VERSION {
            return Err(Error::unsupported(format!(
                "{path} has format version {}; this vlake reads versions 1 to {FORMAT_VERSION}",
                wire.format_version
            )));
        }
        if wire.version != expected_version {
            return Err(Error::corrupt(
                path,
                format!("holds version {}, expected {expected_version}", wire.version),
            ));
        }
        let rows = wire.data_files.iter().try_fold(0u64, |sum, f| {
            f.num_rows
                .checked_sub(f.deletion.as_ref().map_or(0, |d| d.num_deleted))
                .and_then(|live| sum.checked_add(live))
        });
        let rows = rows.ok_or_else(|| Error::corrupt(path, "row counts overflow or deletions exceed rows"))?;
        Ok(Self {
            version: wire.version,
            timestamp_ms: wire.timestamp_ms,
            operation: wire.transaction.operation,
            rows,
            files: wire.data_files.len(),
        })
    }
}

/// Storage format of a data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Apache Parquet, columns carrying field ids.
    Parquet,
}

/// One immutable data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the table root, `/`-separated.
    pub path: String,
    /// File format.
    pub format: FileFormat,
    /// Number of rows in the file (deleted ones included).
    pub num_rows: u64,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// Row id of the file's first row; without `row_ids`, row `i` of the file has id
    /// `row_id_start + i`.
    pub row_id_start: u64,
    /// Per-column statistics, by field id; a missing entry means "unknown".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stats: Vec<ColumnStats>,
    /// Rows of this file deleted since it was written (feature `deletion_files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<DeletionFile>,
    /// The row ids of the file's rows, when they are not consecutive (feature `row_id_files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_ids: Option<RowIdFile>,
    /// The blob files that descriptors in this file's BLOB columns point into (feature
    /// `blob_files`), each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blob_files: Vec<BlobFile>,
}

/// A blob file: the bytes of BLOB values, located by the descriptors in data files
/// (format-spec/data-files.md#blob-columns).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BlobFile {
    /// Path relative to the table root.
    pub path: String,
    /// Size of the file in bytes.
    pub size_bytes: u64,
}

/// Statistics of one column in one data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    /// Field id of the column.
    pub field_id: i32,
    /// Number of nulls.
    pub null_count: u64,
    /// Smallest non-null value, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<StatValue>,
    /// Largest non-null value, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<StatValue>,
}

/// A statistics value. Integers, dates and timestamps are `int` in the column's physical unit.
#[derive(Clone, Debug, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)]
pub enum StatValue {
    Bool(bool),
    Int(i64),
    Uint(u64),
    Float(f64),
    String(String),
}

/// A deletion file: the positions of deleted rows of one data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeletionFile {
    /// Path relative to the table root.
    pub path: String,
    /// Number of deleted rows.
    pub num_deleted: u64,
}

/// A row-id file: the row ids of one data file's rows, in ascending order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RowIdFile {
    /// Path relative to the table root.
    pub path: String,
}

/// A sidecar index bound to a table version (format-spec/indexes.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Unique id of this index build.
    pub id: Uuid,
    /// User-facing name, unique within a version.
    pub name: String,
    /// Index type, e.g. `ivf_pq`, `hnsw`, `ivf_flat`, `fts`, `btree`.
    pub index_type: String,
    /// Field ids of the indexed columns.
    pub field_ids: Vec<i32>,
    /// Type-specific parameters (metric, partitions, ...).
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Table version the index was built (or last updated) at.
    pub built_at_version: u64,
    /// Data files (paths) whose rows the index covers; rows of other files are searched exactly.
    pub covered_files: Vec<String>,
    /// Index files, relative to the table root.
    pub files: Vec<String>,
}

/// The transaction recorded in a manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Unique id; a writer recognises its own commit by it after an ambiguous failure.
    pub id: Uuid,
    /// The version the writer read before writing (0 when creating the table).
    pub read_version: u64,
    /// What the transaction did.
    pub operation: Operation,
}

/// Operations, as recorded in the manifest. Readers ignore operations they do not know.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Operation {
    /// Created the table, with its first rows if any.
    Create {
        /// Rows written.
        rows: u64,
    },
    /// Added data files.
    Append {
        /// Rows added.
        rows: u64,
    },
    /// Replaced all data (and possibly the schema).
    Overwrite {
        /// Rows written.
        rows: u64,
    },
    /// Made an older version's contents the newest version.
    Restore {
        /// The version restored.
        restored_version: u64,
    },
    /// Created, replaced or extended a sidecar index.
    Index {
        /// The index name.
        name: String,
    },
    /// Deleted rows by predicate (deletion files; files whose rows were all deleted dropped).
    Delete {
        /// Rows deleted.
        rows: u64,
    },
    /// Rewrote rows by predicate: deleted them and appended their new values.
    Update {
        /// Rows updated.
        rows: u64,
    },
    /// Merged rows by key: updated matched rows, inserted unmatched ones, and possibly deleted
    /// target rows the source did not match.
    Upsert {
        /// Rows inserted (their keys were not in the table).
        inserted: u64,
        /// Rows replaced by the source's values.
        updated: u64,
        /// Target rows deleted because the source did not match them.
        deleted: u64,
    },
    /// Changed the schema: added, dropped, renamed or widened columns.
    AlterSchema {
        /// What changed, one entry per change, e.g. `add column score`.
        changes: Vec<String>,
    },
    /// Replaced data files by files holding their live rows with the same row ids.
    Compact {
        /// Data files replaced.
        files_removed: u64,
        /// Data files written.
        files_added: u64,
    },
    /// An operation written by a newer vlake; informational only.
    #[serde(other)]
    Other,
}

impl Operation {
    /// A short name for listings.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Append { .. } => "append",
            Self::Overwrite { .. } => "overwrite",
            Self::Restore { .. } => "restore",
            Self::Index { .. } => "index",
            Self::Delete { .. } => "delete",
            Self::Update { .. } => "update",
            Self::Upsert { .. } => "upsert",
            Self::AlterSchema { .. } => "alter_schema",
            Self::Compact { .. } => "compact",
            Self::Other => "other",
        }
    }
}

impl Manifest {
    /// Total number of rows (deleted rows excluded). A valid manifest holds at most
    /// `i64::MAX` rows (see [`Manifest::validate`]); the sum saturates rather than wraps.
    pub fn num_rows(&self) -> u64 {
        self.data_files
            .iter()
            .map(|f| {
                f.num_rows
                    .saturating_sub(f.deletion.as_ref().map_or(0, |d| d.num_deleted))
            })
            .fold(0, u64::saturating_add)
    }

    /// The blob files of this version, each once, by path.
    pub fn blob_files(&self) -> BTreeMap<&str, u64> {
        self.data_files
            .iter()
            .flat_map(|f| &f.blob_files)
            .map(|b| (b.path.as_str(), b.size_bytes))
            .collect()
    }

    /// Total size of the data files in bytes.
    pub fn data_size_bytes(&self) -> u64 {
        self.data_files.iter().map(|f| f.size_bytes).sum()
    }

    /// Every file this version references, by path relative to the table root: data files,
    /// their deletion, row-id and blob files, and the files of its indexes (an index entry may
    /// name a directory, which covers everything under it). Paths may repeat.
    pub fn referenced_files(&self) -> impl Iterator<Item = &str> {
        self.data_files
            .iter()
            .flat_map(|f| {
                std::iter::once(f.path.as_str())
                    .chain(f.deletion.iter().map(|d| d.path.as_str()))
                    .chain(f.row_ids.iter().map(|r| r.path.as_str()))
                    .chain(f.blob_files.iter().map(|b| b.path.as_str()))
            })
            .chain(self.indexes.iter().flat_map(|i| i.files.iter().map(String::as_str)))
    }

    /// Serialises the manifest as the spec's JSON document.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| Error::Internal(format!("cannot encode manifest: {e}")))
    }

    /// Parses and validates a manifest read from `path`, which must hold `expected_version`.
    pub fn decode(bytes: &[u8], path: &str, expected_version: u64) -> Result<Self> {
        // Check the format version before the full parse so that a newer format is reported as
        // such rather than as corruption.
        #[derive(Deserialize)]
        struct Header {
            format_version: u32,
        }
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, format!("not a vlake manifest: {e}")))?;
        if header.format_version == 0 || header.format_version > FORMAT_VERSION {
            return Err(Error::unsupported(format!(
                "{path} has format version {}; this vlake reads versions 1 to {FORMAT_VERSION}",
                header.format_version
            )));
        }
        let manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| Error::corrupt(path, format!("invalid manifest: {e}")))?;
        manifest.validate(path, expected_version)?;
        Ok(manifest)
    }

    /// Checks the invariants a valid manifest satisfies.
    pub fn validate(&self, path: &str, expected_version: u64) -> Result<()> {
        if let Some(f) = self
            .reader_features
            .iter()
            .find(|f| !KNOWN_READER_FEATURES.contains(&f.as_str()))
        {
            return Err(Error::unsupported(format!(
                "{path} requires reader feature '{f}', which this vlake does not know"
            )));
        }
        let bad = |reason: String| Err(Error::corrupt(path, reason));
        if self.version != expected_version {
            return bad(format!(
                "holds version {} where version {expected_version} was expected",
                self.version
            ));
        }
        if self.version == 0 || self.parent_version.is_some_and(|p| p >= self.version) {
            return bad(format!(
                "version {} with parent {:?} is out of order",
                self.version, self.parent_version
            ));
        }
        self.schema.validate().or_else(|e| bad(format!("bad schema: {e}")))?;
        if self.schema.max_field_id() > self.max_field_id {
            return bad(format!(
                "schema uses field id {} above max_field_id {}",
                self.schema.max_field_id(),
                self.max_field_id
            ));
        }
        for id in &self.primary_key {
            if !self.schema.fields.iter().any(|f| f.id == *id) {
                return bad(format!(
                    "primary key field id {id} is not a top-level field of the schema"
                ));
            }
        }
        for (used, feature) in [
            (!self.primary_key.is_empty(), PRIMARY_KEY),
            (self.schema.has_defaults(), COLUMN_DEFAULTS),
            (self.schema.has_blobs(), BLOB_FILES),
        ] {
            let listed = if feature == PRIMARY_KEY {
                &self.writer_features
            } else {
                &self.reader_features
            };
            if used && !listed.contains(feature) {
                return bad(format!("the version uses feature '{feature}' but does not list it"));
            }
        }
        let mut paths = BTreeSet::new();
        let mut total_rows: u64 = 0;
        for f in &self.data_files {
            if !paths.insert(f.path.as_str()) {
                return bad(format!("data file {} is listed twice", f.path));
            }
            // Parquet counts rows in an i64, and so do the engines that read the count.
            total_rows = match total_rows.checked_add(f.num_rows) {
                Some(t) if i64::try_from(t).is_ok() => t,
                _ => {
                    return bad(format!(
                        "data file {} has {} rows, beyond {} rows in all",
                        f.path,
                        f.num_rows,
                        i64::MAX
                    ))
                }
            };
            if !is_relative(&f.path) {
                return bad(format!(
                    "data file path '{}' is not a relative path inside the table",
                    f.path
                ));
            }
            if f.row_id_start
                .checked_add(f.num_rows)
                .is_none_or(|end| end > self.next_row_id)
            {
                return bad(format!("row ids of {} exceed next_row_id {}", f.path, self.next_row_id));
            }
            if let Some(d) = &f.deletion {
                if d.num_deleted > f.num_rows {
                    return bad(format!(
                        "deletion file {} deletes more rows than {} has",
                        d.path, f.path
                    ));
                }
            }
            let members = [
                (f.deletion.as_ref().map(|d| &d.path), DELETION_FILES),
                (f.row_ids.as_ref().map(|r| &r.path), ROW_ID_FILES),
            ]
            .into_iter()
            .chain(f.blob_files.iter().map(|b| (Some(&b.path), BLOB_FILES)));
            for (member, feature) in members {
                let Some(p) = member else { continue };
                if !self.reader_features.contains(feature) {
                    return bad(format!(
                        "data file {} has {p} but the version does not require reader feature '{feature}'",
                        f.path
                    ));
                }
                if !is_relative(p) {
                    return bad(format!(
                        "path '{p}' of data file {} is not a relative path inside the table",
                        f.path
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether a writer of this build may commit on top of this version.
    pub fn check_writable(&self) -> Result<()> {
        match self.writer_features.iter().find(|f| !KNOWN_WRITER_FEATURES.contains(&f.as_str())) {
            Some(f) => Err(Error::unsupported(format!(
                "version {} requires writer feature '{f}', which this vlake does not know; upgrade vlake to write this table",
                self.version
            ))),
            None => Ok(()),
        }
    }
}

/// Whether `path` is a non-empty relative path without `.` or `..` segments.
fn is_relative(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && !path.split('/').any(|s| s == ".." || s == ".")
}

/// A tag: a name for a version, stored at `_refs/tags/<name>.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    /// Tag name.
    pub name: String,
    /// The tagged version.
    pub version: u64,
    /// When the tag was created, milliseconds since the Unix epoch.
    pub created_ms: i64,
}

impl Tag {
    /// Checks that `name` is a valid tag name: 1 to 128 of `[A-Za-z0-9._-]`, not starting with `.`.
    pub fn validate_name(name: &str) -> Result<()> {
        let ok = !name.is_empty()
            && name.len() <= 128
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(format!(
                "tag name '{name}' is invalid: use 1 to 128 letters, digits, '.', '_' or '-', not starting with '.'"
            )))
        }
    }
}

/// The non-authoritative pointer to the latest version, stored at `_latest.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatestHint {
    /// A version known to exist; the latest is this one or newer.
    pub version: u64,
}
