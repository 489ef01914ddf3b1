//! What a version of a table holds, as serialisable values: the one description the CLI's
//! `--json` output and the Python binding both print (no binding builds its own).

use serde::Serialize;

use crate::Table;

/// A summary of one version of a table ([`Table::info`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct TableInfo {
    /// Where the table lives.
    pub uri: String,
    /// The version number.
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The format version of the manifest.
    pub format_version: u32,
    /// Live rows.
    pub rows: u64,
    /// Bytes of the data files.
    pub size_bytes: u64,
    /// The columns.
    pub schema: Vec<FieldInfo>,
    /// The data files.
    pub files: Vec<FileInfo>,
    /// Blob files referenced by this version.
    pub blob_files: usize,
    /// Bytes of those blob files.
    pub blob_bytes: u64,
    /// The indexes.
    pub indexes: Vec<IndexInfo>,
}

/// One column of [`TableInfo::schema`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FieldInfo {
    /// The field id (stable across renames).
    pub id: i32,
    /// The column name.
    pub name: String,
    /// The Arrow type, as Arrow prints it.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether it may hold nulls.
    pub nullable: bool,
    /// Whether it is a BLOB column.
    pub blob: bool,
}

/// One data file of [`TableInfo::files`].
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct FileInfo {
    /// Path relative to the table root.
    pub path: String,
    /// Rows written to it (deleted ones included).
    pub rows: u64,
    /// Its size.
    pub size_bytes: u64,
    /// The row id of its first row.
    pub row_id_start: u64,
}

/// One index of a version ([`Table::indexes`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct IndexInfo {
    /// The index name.
    pub name: String,
    /// `hnsw`, `ivf_pq`, `ivf_flat`, `fts`, ...
    #[serde(rename = "type")]
    pub index_type: String,
    /// The indexed column's name at this version.
    pub column: Option<String>,
    /// The indexed field ids.
    pub field_ids: Vec<i32>,
    /// The distance metric of a vector index.
    pub metric: Option<serde_json::Value>,
    /// The build parameters, as recorded.
    pub params: std::collections::BTreeMap<String, serde_json::Value>,
    /// The version it was built (or last updated) at.
    pub built_at_version: u64,
    /// Data files whose rows it covers; other rows are searched exactly.
    pub covered_files: Vec<String>,
    /// Its segment files.
    pub files: Vec<String>,
}

impl Table {
    /// This version's summary: schema, files, indexes. Cheap (from the loaded manifest).
    pub fn info(&self) -> TableInfo {
        let m = self.manifest();
        let blob_files = m.blob_files();
        TableInfo {
            uri: self.uri().to_string(),
            version: m.version,
            timestamp_ms: m.timestamp_ms,
            format_version: m.format_version,
            rows: m.num_rows(),
            size_bytes: m.data_size_bytes(),
            schema: m
                .schema
                .fields
                .iter()
                .map(|f| FieldInfo {
                    id: f.id,
                    name: f.name.clone(),
                    data_type: f.to_arrow(false).data_type().to_string(),
                    nullable: f.nullable,
                    blob: f.is_blob(),
                })
                .collect(),
            files: m
                .data_files
                .iter()
                .map(|f| FileInfo {
                    path: f.path.clone(),
                    rows: f.num_rows,
                    size_bytes: f.size_bytes,
                    row_id_start: f.row_id_start,
                })
                .collect(),
            blob_files: blob_files.len(),
            blob_bytes: blob_files.values().sum(),
            indexes: self.indexes(),
        }
    }

    /// The indexes of this version. Cheap (from the loaded manifest).
    pub fn indexes(&self) -> Vec<IndexInfo> {
        let schema = self.table_schema();
        self.manifest()
            .indexes
            .iter()
            .map(|e| IndexInfo {
                name: e.name.clone(),
                index_type: e.index_type.clone(),
                column: e
                    .field_ids
                    .first()
                    .and_then(|id| schema.fields.iter().find(|f| f.id == *id))
                    .map(|f| f.name.clone()),
                field_ids: e.field_ids.clone(),
                metric: e.params.get("metric").cloned(),
                params: e.params.clone(),
                built_at_version: e.built_at_version,
                covered_files: e.covered_files.clone(),
                files: e.files.clone(),
            })
            .collect()
    }
}
