//! What a transaction changes: its action, and the transaction as the commit loop sees it.

use std::fmt::Debug;
use std::sync::Arc;

use futures::future::BoxFuture;
use uuid::Uuid;
use vlake_format::{DataFile, IndexEntry, Manifest, Operation, Result, Schema};
use vlake_io::TableLocation;

use super::StagedFile;

/// What a transaction changes.
#[derive(Debug)]
pub(crate) enum Action {
    /// Creates the table.
    Create {
        schema: Schema,
        primary_key: Vec<i32>,
        files: Vec<StagedFile>,
    },
    /// Adds data files.
    Append { files: Vec<StagedFile> },
    /// Replaces all data, possibly with a new schema.
    Overwrite {
        schema: Schema,
        max_field_id: i32,
        primary_key: Vec<i32>,
        files: Vec<StagedFile>,
    },
    /// Makes an older version the newest.
    Restore { from: Arc<Manifest> },
    /// Adds or replaces the index entry of the same name; `new_files` are the segment files
    /// this transaction wrote.
    PutIndex { entry: IndexEntry, new_files: Vec<String> },
    /// A delete, an update or an upsert: changes deletions of (or drops) files of the read
    /// version and appends `appended` like an append; `written` are the data and deletion files
    /// written. `keys`, when set, are checked against the rows of every concurrent commit.
    Mutate {
        operation: Operation,
        changes: Vec<FileChange>,
        appended: Vec<StagedFile>,
        written: Vec<String>,
        keys: Option<Box<dyn RowCheck>>,
    },
    /// A schema change; `groups` are data files rewritten to backfill a column (keeping their
    /// row ids), `written` the files written for them.
    AlterSchema {
        schema: Schema,
        changes: Vec<String>,
        groups: Vec<CompactedGroup>,
        written: Vec<String>,
    },
    /// A compaction: each group's sources are replaced by its outputs, which keep their row
    /// ids; `written` are the data and row-id files written.
    Compact {
        groups: Vec<CompactedGroup>,
        written: Vec<String>,
    },
}

/// A data file of the read version that a delete or update changes.
#[derive(Debug)]
pub(crate) struct FileChange {
    /// The file as the read version lists it.
    pub old: DataFile,
    /// Its new entry (a new deletion file), or `None` to drop it.
    pub new: Option<DataFile>,
}

/// Data files a compaction replaced by new ones.
#[derive(Debug)]
pub(crate) struct CompactedGroup {
    /// The replaced files, as the read version lists them.
    pub sources: Vec<DataFile>,
    /// Their replacements, with the sources' row ids.
    pub outputs: Vec<DataFile>,
}

impl Action {
    /// The operation the version's transaction records.
    pub(crate) fn operation(&self) -> Operation {
        let rows = |files: &[StagedFile]| files.iter().map(|f| f.num_rows).sum();
        match self {
            Self::Create { files, .. } => Operation::Create { rows: rows(files) },
            Self::AlterSchema { changes, .. } => Operation::AlterSchema {
                changes: changes.clone(),
            },
            Self::Append { files } => Operation::Append { rows: rows(files) },
            Self::Overwrite { files, .. } => Operation::Overwrite { rows: rows(files) },
            Self::Restore { from } => Operation::Restore {
                restored_version: from.version,
            },
            Self::PutIndex { entry, .. } => Operation::Index {
                name: entry.name.clone(),
            },
            Self::Mutate { operation, .. } => operation.clone(),
            Self::Compact { groups, .. } => Operation::Compact {
                files_removed: groups.iter().map(|g| g.sources.len() as u64).sum(),
                files_added: groups.iter().map(|g| g.outputs.len() as u64).sum(),
            },
        }
    }

    /// The files of the read version this action changes or removes, as it read them.
    pub(crate) fn touched_files(&self) -> Vec<&DataFile> {
        match self {
            Self::Mutate { changes, .. } => changes.iter().map(|c| &c.old).collect(),
            Self::Compact { groups, .. } | Self::AlterSchema { groups, .. } => {
                groups.iter().flat_map(|g| &g.sources).collect()
            }
            Self::Create { .. }
            | Self::Append { .. }
            | Self::Overwrite { .. }
            | Self::Restore { .. }
            | Self::PutIndex { .. } => vec![],
        }
    }

    /// Paths of the files that must exist for the commit to be valid: the files it wrote and,
    /// for a restore, every file of the restored version.
    pub(crate) fn required_paths(&self) -> Vec<&str> {
        match self {
            Self::Restore { from } => from.referenced_files().collect(),
            Self::Create { .. }
            | Self::Append { .. }
            | Self::Overwrite { .. }
            | Self::PutIndex { .. }
            | Self::Mutate { .. }
            | Self::AlterSchema { .. }
            | Self::Compact { .. } => self.written_paths(),
        }
    }

    /// Every new file the committed version references: [`Action::written_paths`] and, for a
    /// mutation, the files it appends (which an operation may have written before planning).
    pub(crate) fn new_paths(&self) -> Vec<&str> {
        let mut paths = self.written_paths();
        if let Self::Mutate { appended, .. } = self {
            paths.extend(appended.iter().flat_map(StagedFile::created));
        }
        paths
    }

    /// Paths of the files this action wrote (removed again when it fails).
    pub(crate) fn written_paths(&self) -> Vec<&str> {
        match self {
            Self::Create { files, .. } | Self::Append { files } | Self::Overwrite { files, .. } => {
                files.iter().flat_map(StagedFile::created).collect()
            }
            Self::Restore { .. } => vec![],
            Self::PutIndex { new_files, .. } => new_files.iter().map(String::as_str).collect(),
            Self::Mutate { written, .. } | Self::Compact { written, .. } | Self::AlterSchema { written, .. } => {
                written.iter().map(String::as_str).collect()
            }
        }
    }
}

/// A check of the rows a concurrent commit added, made before a transaction is rebased over
/// that commit: a merge checks that no key it inserts was inserted concurrently. Implemented
/// above the commit core, which does not read data files itself.
pub(crate) trait RowCheck: Debug + Send + Sync {
    /// Fails (with a retryable conflict) when `added`, data files that the concurrent commit
    /// `theirs` added, hold rows this transaction cannot be rebased over.
    fn check<'a>(
        &'a self,
        location: &'a TableLocation,
        added: &'a [&'a DataFile],
        theirs: &'a Manifest,
    ) -> BoxFuture<'a, Result<()>>;
}

/// A transaction ready to commit.
#[derive(Debug)]
pub(crate) struct PendingCommit {
    pub id: Uuid,
    /// The version the writer read (`None` when creating the table).
    pub read: Option<Arc<Manifest>>,
    pub action: Action,
}
