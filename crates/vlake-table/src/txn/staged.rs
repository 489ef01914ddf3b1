//! Staged files: written to a table's storage, described, and owned by a transaction until it
//! commits them (format-spec/commit.md#staged-writes).

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};
use vlake_format::layout::{is_vlake_file, BLOBS_DIR, DATA_DIR, DELETIONS_DIR};
use vlake_format::{BlobFile, ColumnStats, DeletionFile, Error, Result, Schema};
use vlake_io::{CommitStore, TableLocation};

/// A data file written to a table's storage but not part of any version yet: what a writer
/// returns to the process that commits (it serialises to JSON, so writers may run anywhere).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StagedFile {
    /// Path of the data file, relative to the table root.
    pub path: String,
    /// Rows in the file.
    pub num_rows: u64,
    /// Size of the file in bytes.
    pub size_bytes: u64,
    /// Column statistics, as the manifest records them.
    #[serde(default)]
    pub stats: Vec<ColumnStats>,
    /// Rows of the file deleted in the same commit (an upsert's skipped source rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion: Option<DeletionFile>,
    /// The blob files its BLOB descriptors point into.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blob_files: Vec<BlobFile>,
    /// Blob files the write created that this file is the first to point into (removed with it
    /// when the transaction does not commit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub new_blobs: Vec<String>,
}

impl StagedFile {
    /// The files written for this one: the data file, its new blob files and its deletion file.
    pub fn created(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.path.as_str())
            .chain(self.new_blobs.iter().map(String::as_str))
            .chain(self.deletion.iter().map(|d| d.path.as_str()))
    }

    /// Checks a description that came from outside the process: every path must be one vlake
    /// writes, in the directory its kind lives in, and the new blob files among its blob files.
    pub(crate) fn check(&self) -> Result<()> {
        let in_dir =
            |path: &str, dir: &str| is_vlake_file(path) && path.strip_prefix(dir).is_some_and(|p| p.starts_with('/'));
        let bad = |what: String| Err(Error::invalid(format!("staged file {}: {what}", self.path)));
        if !in_dir(&self.path, DATA_DIR) {
            return bad(format!("'{}' is not the path of a vlake data file", self.path));
        }
        if let Some(d) = &self.deletion {
            if !in_dir(&d.path, DELETIONS_DIR) {
                return bad(format!("'{}' is not the path of a vlake deletion file", d.path));
            }
            if d.num_deleted > self.num_rows {
                return bad(format!("{} rows deleted of {}", d.num_deleted, self.num_rows));
            }
        }
        if let Some(b) = self.blob_files.iter().find(|b| !in_dir(&b.path, BLOBS_DIR)) {
            return bad(format!("'{}' is not the path of a vlake blob file", b.path));
        }
        if let Some(b) = self
            .new_blobs
            .iter()
            .find(|n| !self.blob_files.iter().any(|b| &b.path == *n))
        {
            return bad(format!("new blob file '{b}' is not among its blob files"));
        }
        Ok(())
    }
}

/// How the files of a staged write are committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StagedMode {
    /// Added to the table's rows.
    Append,
    /// Replacing all of the table's rows (and its schema, with the write's).
    Overwrite,
}

impl std::fmt::Display for StagedMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Append => "append",
            Self::Overwrite => "overwrite",
        })
    }
}

impl std::str::FromStr for StagedMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "append" => Ok(Self::Append),
            "overwrite" => Ok(Self::Overwrite),
            _ => Err(Error::invalid(format!(
                "unknown write mode '{s}': use append or overwrite"
            ))),
        }
    }
}

/// The files one writer staged for a table: written for `schema`, reading version
/// `read_version` of the table at `table`. Any number of staged writes (from any number of
/// processes) commit together in one version through a [`crate::Transaction`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StagedWrite {
    /// URI of the table the files were written into.
    pub table: String,
    /// The version the writer read.
    pub read_version: u64,
    /// How the files are meant to be committed.
    pub mode: StagedMode,
    /// The schema the files were written for (field ids included).
    pub schema: Schema,
    /// The table's primary key (field ids) the files were written for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub primary_key: Vec<i32>,
    /// The data files.
    pub files: Vec<StagedFile>,
}

impl StagedWrite {
    pub(crate) fn new(
        location: &TableLocation,
        read_version: u64,
        mode: StagedMode,
        schema: Schema,
        primary_key: Vec<i32>,
        files: Vec<StagedFile>,
    ) -> Self {
        Self {
            table: location.uri().to_string(),
            read_version,
            mode,
            schema,
            primary_key,
            files,
        }
    }

    /// Rows in all the files.
    pub fn num_rows(&self) -> u64 {
        self.files.iter().map(|f| f.num_rows).sum()
    }

    /// Every file written for this write (data, blob and deletion files).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.files.iter().flat_map(StagedFile::created)
    }

    /// The description as JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::Internal(format!("cannot encode a staged write: {e}")))
    }

    /// Reads a description written by [`StagedWrite::to_json`], checking it.
    pub fn from_json(json: &str) -> Result<Self> {
        let write: Self = serde_json::from_str(json).map_err(|e| Error::invalid(format!("not a staged write: {e}")))?;
        write.files.iter().try_for_each(StagedFile::check)?;
        Ok(write)
    }
}

/// Uncommitted files a transaction owns: removed when it fails for certain, or when it is
/// dropped before committing (then in the background, on the Tokio runtime the drop runs on;
/// with none, cleanup removes them once they are older than [`crate::MIN_FILE_AGE`]). Files
/// the latest version references are never removed, whichever way.
#[derive(Debug)]
pub(crate) struct StagedFiles {
    store: CommitStore,
    paths: BTreeSet<String>,
}

impl StagedFiles {
    pub(crate) fn new(store: CommitStore) -> Self {
        Self {
            store,
            paths: BTreeSet::new(),
        }
    }

    /// Takes ownership of `paths` (once each, however often they are named).
    pub(crate) fn adopt<'a>(&mut self, paths: impl IntoIterator<Item = &'a str>) {
        self.paths.extend(paths.into_iter().map(str::to_string));
    }

    /// Gives the files up: they were committed, or may have been.
    pub(crate) fn release(&mut self) {
        self.paths.clear();
    }

    /// Gives up the files among `paths` (they were committed), keeping the others.
    pub(crate) fn release_committed<'a>(&mut self, paths: impl IntoIterator<Item = &'a str>) {
        for path in paths {
            self.paths.remove(path);
        }
    }

    /// Removes the files now, except those the latest version of the table references (a
    /// staged write committed twice, or committed by someone else); when the latest version
    /// cannot be read, removes none (cleanup removes them later).
    pub(crate) async fn remove_unreferenced(&mut self) {
        let paths = std::mem::take(&mut self.paths);
        remove_unreferenced(&self.store, paths).await;
    }
}

impl Drop for StagedFiles {
    fn drop(&mut self) {
        if self.paths.is_empty() {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let store = self.store.clone();
            let paths = std::mem::take(&mut self.paths);
            runtime.spawn(async move { remove_unreferenced(&store, paths).await });
        }
    }
}

/// Removes `paths` from the table at `store`, except those its latest version references; none
/// when the latest version cannot be read.
async fn remove_unreferenced(store: &CommitStore, mut paths: BTreeSet<String>) {
    let referenced: HashSet<String> = match store.latest_version().await {
        Ok(None) => HashSet::new(),
        Ok(Some(version)) => match store.load_manifest(version).await {
            Ok(m) => m.referenced_files().map(str::to_string).collect(),
            Err(_) => return,
        },
        Err(_) => return,
    };
    paths.retain(|p| !referenced.contains(p));
    remove_files(store.location(), paths.iter().map(String::as_str)).await;
}

/// Deletes uncommitted files, ignoring failures (cleanup removes what is left).
pub(crate) async fn remove_files(location: &TableLocation, paths: impl Iterator<Item = &str>) {
    for path in paths {
        let _ = location.delete(path).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> StagedFile {
        StagedFile {
            path: path.into(),
            num_rows: 3,
            size_bytes: 10,
            stats: vec![],
            deletion: None,
            blob_files: vec![],
            new_blobs: vec![],
        }
    }

    #[test]
    fn descriptions_from_outside_are_checked() {
        let good = format!("data/{}.parquet", "a".repeat(32));
        assert!(file(&good).check().is_ok());
        for bad in [
            "data/x.parquet",
            "../data/aa.parquet",
            "notes/readme.md",
            "_versions/1.json",
        ] {
            assert!(file(bad).check().is_err(), "{bad}");
        }
        let mut f = file(&good);
        f.new_blobs = vec![format!("_blobs/{}.blob", "b".repeat(32))];
        assert!(f.check().is_err(), "a new blob not among the blob files");
        f.deletion = Some(DeletionFile {
            path: format!("_deletions/{}.bin", "c".repeat(32)),
            num_deleted: 4,
        });
        f.new_blobs.clear();
        assert!(f.check().is_err(), "more rows deleted than the file has");
    }
}
