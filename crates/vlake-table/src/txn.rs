//! Transactions and the commit loop (format-spec/commit.md).
//!
//! A writer writes its data files first, then tries to create the manifest of the next version
//! with put-if-absent. When another writer took that version, the two transactions are checked
//! for compatibility: compatible ones are rebased onto the winner and retried, incompatible ones
//! fail with [`Error::CommitConflict`]. A transaction is recognised by its id, so an attempt whose
//! outcome was unknown (an I/O error after the put) is never applied twice.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use uuid::Uuid;
use vlake_format::manifest::{BLOB_FILES, COLUMN_DEFAULTS, DELETION_FILES, PRIMARY_KEY, ROW_ID_FILES};
use vlake_format::{
    DataFile, Error, FileFormat, IndexEntry, Manifest, Operation, Result, Schema, Transaction, FORMAT_VERSION,
};
use vlake_io::{CommitOutcome, CommitStore};

use crate::merge::KeyCheck;
use crate::write::WrittenFile;

/// What a transaction changes.
#[derive(Debug)]
pub(crate) enum Action {
    /// Creates the table.
    Create {
        schema: Schema,
        primary_key: Vec<i32>,
        files: Vec<WrittenFile>,
    },
    /// Adds data files.
    Append { files: Vec<WrittenFile> },
    /// Replaces all data, possibly with a new schema.
    Overwrite {
        schema: Schema,
        max_field_id: i32,
        primary_key: Vec<i32>,
        files: Vec<WrittenFile>,
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
        appended: Vec<WrittenFile>,
        written: Vec<String>,
        keys: Option<KeyCheck>,
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
    fn operation(&self) -> Operation {
        let rows = |files: &[WrittenFile]| files.iter().map(|f| f.num_rows).sum();
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
    fn touched_files(&self) -> Vec<&DataFile> {
        match self {
            Self::Mutate { changes, .. } => changes.iter().map(|c| &c.old).collect(),
            Self::Compact { groups, .. } | Self::AlterSchema { groups, .. } => {
                groups.iter().flat_map(|g| &g.sources).collect()
            }
            _ => vec![],
        }
    }

    /// Paths of the files that must exist for the commit to be valid: the files it wrote and,
    /// for a restore, every file of the restored version.
    fn required_paths(&self) -> Vec<&str> {
        match self {
            Self::Restore { from } => from.referenced_files().collect(),
            _ => self.written_paths(),
        }
    }

    /// Paths of the files this action wrote (removed again when it fails).
    pub(crate) fn written_paths(&self) -> Vec<&str> {
        match self {
            Self::Create { files, .. } | Self::Append { files } | Self::Overwrite { files, .. } => {
                files.iter().flat_map(WrittenFile::created).collect()
            }
            Self::Restore { .. } => vec![],
            Self::PutIndex { new_files, .. } => new_files.iter().map(String::as_str).collect(),
            Self::Mutate { written, .. } | Self::Compact { written, .. } | Self::AlterSchema { written, .. } => {
                written.iter().map(String::as_str).collect()
            }
        }
    }
}

/// A transaction ready to commit.
#[derive(Debug)]
pub(crate) struct PendingCommit {
    pub id: Uuid,
    /// The version the writer read (`None` when creating the table).
    pub read: Option<Arc<Manifest>>,
    pub action: Action,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Data file entries for `files`, with row ids from `next_row_id`; fails when the row ids would
/// overflow.
fn new_files(files: &[WrittenFile], mut next_row_id: u64) -> Result<(Vec<DataFile>, u64)> {
    let out = files
        .iter()
        .map(|f| {
            let row_id_start = next_row_id;
            next_row_id = next_row_id
                .checked_add(f.num_rows)
                .ok_or_else(|| Error::invalid("row ids overflow: the table has reached 2^64 rows"))?;
            Ok(DataFile {
                path: f.path.clone(),
                format: FileFormat::Parquet,
                num_rows: f.num_rows,
                size_bytes: f.size_bytes,
                row_id_start,
                stats: f.stats.clone(),
                deletion: f.deletion.clone(),
                row_ids: None,
                blob_files: f.blob_files.clone(),
            })
        })
        .collect::<Result<_>>()?;
    Ok((out, next_row_id))
}

/// The manifest that results from applying `pending` on top of `base`.
fn apply(base: Option<&Manifest>, pending: &PendingCommit) -> Result<Manifest> {
    let transaction = Transaction {
        id: pending.id,
        read_version: pending.read.as_ref().map_or(0, |m| m.version),
        operation: pending.action.operation(),
    };
    let Some(base) = base else {
        let Action::Create {
            schema,
            primary_key,
            files,
        } = &pending.action
        else {
            return Err(Error::Internal("only a create commits without a base version".into()));
        };
        let (data_files, next_row_id) = new_files(files, 0)?;
        let mut first = Manifest {
            format_version: FORMAT_VERSION,
            reader_features: Default::default(),
            writer_features: Default::default(),
            version: 1,
            parent_version: None,
            timestamp_ms: now_ms(),
            max_field_id: schema.max_field_id(),
            primary_key: primary_key.clone(),
            schema: schema.clone(),
            next_row_id,
            data_files,
            indexes: vec![],
            properties: Default::default(),
            transaction,
        };
        add_features(&mut first);
        return Ok(first);
    };
    let mut next = base.clone();
    next.version = base.version.checked_add(1).ok_or_else(|| {
        Error::invalid(format!(
            "version {} is the largest a table can have; no version can follow it",
            base.version
        ))
    })?;
    next.parent_version = Some(base.version);
    next.timestamp_ms = now_ms().max(base.timestamp_ms);
    next.transaction = transaction;
    match &pending.action {
        Action::Create { .. } => return Err(Error::Internal("create applied on top of an existing version".into())),
        Action::Append { files } => {
            let (added, next_row_id) = new_files(files, base.next_row_id)?;
            next.data_files.extend(added);
            next.next_row_id = next_row_id;
            add_features(&mut next);
        }
        Action::Overwrite {
            schema,
            max_field_id,
            primary_key,
            files,
        } => {
            let (data_files, next_row_id) = new_files(files, base.next_row_id)?;
            next.schema = schema.clone();
            next.primary_key = primary_key.clone();
            next.max_field_id = (*max_field_id).max(base.max_field_id);
            next.data_files = data_files;
            next.next_row_id = next_row_id;
            next.indexes.clear();
            add_features(&mut next);
        }
        Action::Restore { from } => {
            next.schema = from.schema.clone();
            next.data_files = from.data_files.clone();
            next.indexes = from.indexes.clone();
            next.properties = from.properties.clone();
            next.reader_features = from.reader_features.clone();
            next.writer_features = from.writer_features.clone();
            next.primary_key = from.primary_key.clone();
        }
        Action::PutIndex { entry, .. } => {
            next.indexes.retain(|i| i.name != entry.name);
            next.indexes.push(entry.clone());
        }
        Action::Mutate { changes, appended, .. } => {
            for change in changes {
                let at = position(&next, &change.old.path)?;
                match &change.new {
                    Some(new) => next.data_files[at] = new.clone(),
                    None => {
                        next.data_files.remove(at);
                        for index in &mut next.indexes {
                            index.covered_files.retain(|p| *p != change.old.path);
                        }
                    }
                }
            }
            let (added, next_row_id) = new_files(appended, base.next_row_id)?;
            next.data_files.extend(added);
            next.next_row_id = next_row_id;
        }
        Action::AlterSchema { schema, groups, .. } => {
            next.schema = schema.clone();
            next.max_field_id = next.max_field_id.max(schema.max_field_id());
            // Indexes of dropped columns go with them.
            next.indexes
                .retain(|i| i.field_ids.iter().all(|id| schema.field_by_id(*id).is_some()));
            replace_groups(&mut next, groups)?;
        }
        Action::Compact { groups, .. } => {
            replace_groups(&mut next, groups)?;
        }
    }
    add_features(&mut next);
    Ok(next)
}

/// Replaces each group's sources by its outputs, which hold the same rows with the same ids.
fn replace_groups(next: &mut Manifest, groups: &[CompactedGroup]) -> Result<()> {
    for group in groups {
        let at = group
            .sources
            .iter()
            .map(|s| position(next, &s.path))
            .collect::<Result<Vec<_>>>()?
            .into_iter()
            .min()
            .unwrap_or(next.data_files.len());
        let is_source = |p: &str| group.sources.iter().any(|s| s.path == p);
        next.data_files.retain(|f| !is_source(&f.path));
        next.data_files.splice(at..at, group.outputs.iter().cloned());
        // An index that covered every source covers the outputs (same rows, same ids); one that
        // covered only some no longer covers them, and those rows are searched exactly.
        for index in &mut next.indexes {
            let covered = group
                .sources
                .iter()
                .filter(|s| index.covered_files.contains(&s.path))
                .count();
            index.covered_files.retain(|p| !is_source(p));
            if covered == group.sources.len() {
                index.covered_files.extend(group.outputs.iter().map(|o| o.path.clone()));
            }
        }
    }
    Ok(())
}

/// Where `path` is in `manifest.data_files`.
fn position(manifest: &Manifest, path: &str) -> Result<usize> {
    manifest
        .data_files
        .iter()
        .position(|f| f.path == path)
        .ok_or_else(|| Error::Internal(format!("data file {path} vanished from version {}", manifest.version)))
}

/// Requires the reader and writer features that the data files and the schema of `manifest` use.
fn add_features(manifest: &mut Manifest) {
    for (feature, used, for_readers) in [
        (
            DELETION_FILES,
            manifest.data_files.iter().any(|f| f.deletion.is_some()),
            true,
        ),
        (
            ROW_ID_FILES,
            manifest.data_files.iter().any(|f| f.row_ids.is_some()),
            true,
        ),
        (COLUMN_DEFAULTS, manifest.schema.has_defaults(), true),
        (PRIMARY_KEY, !manifest.primary_key.is_empty(), false),
        (
            BLOB_FILES,
            manifest.schema.has_blobs() || manifest.data_files.iter().any(|f| !f.blob_files.is_empty()),
            true,
        ),
    ] {
        if used {
            if for_readers {
                manifest.reader_features.insert(feature.to_string());
            }
            manifest.writer_features.insert(feature.to_string());
        }
    }
}

/// Whether `ours` (based on `read`) may be rebased over `theirs`, which committed in between.
fn check_rebase(ours: &PendingCommit, theirs: &Manifest) -> Result<()> {
    let conflict = |reason: String, retryable: bool| {
        Err(Error::CommitConflict {
            version: theirs.version,
            reason,
            retryable,
        })
    };
    let their_op = theirs.transaction.operation.name();
    let read_schema = ours.read.as_ref().map(|m| &m.schema);
    match &ours.action {
        Action::Create { .. } => Err(Error::AlreadyExists {
            what: "the table (version 1 exists)".into(),
        }),
        Action::Append { .. } if read_schema == Some(&theirs.schema) => match theirs.transaction.operation {
            Operation::Other => conflict(
                "a newer vlake committed an operation this one does not know".into(),
                false,
            ),
            _ => Ok(()),
        },
        Action::Append { .. } => conflict(
            format!("a concurrent {their_op} changed the schema; the data was written for the old one"),
            false,
        ),
        Action::Overwrite { .. } => match theirs.transaction.operation {
            Operation::Append { .. }
            | Operation::Create { .. }
            | Operation::Delete { .. }
            | Operation::Update { .. }
            | Operation::Upsert { .. }
            | Operation::Compact { .. } => Ok(()),
            _ => conflict(format!("a concurrent {their_op} replaced the table contents"), true),
        },
        Action::PutIndex { entry, .. } => {
            let read_entry = ours
                .read
                .as_ref()
                .and_then(|m| m.indexes.iter().find(|i| i.name == entry.name));
            let their_entry = theirs.indexes.iter().find(|i| i.name == entry.name);
            let missing = entry
                .covered_files
                .iter()
                .find(|f| !theirs.data_files.iter().any(|d| &d.path == *f));
            if read_entry != their_entry {
                conflict(
                    format!("index '{}' was changed by a concurrent {their_op}", entry.name),
                    true,
                )
            } else if let Some(file) = missing {
                conflict(
                    format!("a concurrent {their_op} removed data file {file}, which the index covers"),
                    true,
                )
            } else if read_schema != Some(&theirs.schema) {
                conflict(format!("a concurrent {their_op} changed the schema"), true)
            } else {
                Ok(())
            }
        }
        Action::Mutate { .. } | Action::Compact { .. } | Action::AlterSchema { .. } => {
            if theirs.transaction.operation == Operation::Other {
                return conflict(
                    "a newer vlake committed an operation this one does not know".into(),
                    false,
                );
            }
            if read_schema != Some(&theirs.schema) {
                return conflict(format!("a concurrent {their_op} changed the schema"), true);
            }
            if ours.read.as_ref().map(|m| &m.primary_key) != Some(&theirs.primary_key) {
                return conflict(format!("a concurrent {their_op} changed the primary key"), true);
            }
            if let Action::AlterSchema { groups, .. } = &ours.action {
                if !groups.is_empty() && adds_rows(&theirs.transaction.operation) {
                    return conflict(
                        format!("a concurrent {their_op} added rows that the backfill did not see"),
                        true,
                    );
                }
            }
            // Rebase only when every file we change is still there as we read it.
            match ours
                .action
                .touched_files()
                .into_iter()
                .find(|f| !theirs.data_files.contains(f))
            {
                Some(f) => conflict(
                    format!("a concurrent {their_op} changed or removed data file {}", f.path),
                    true,
                ),
                None => Ok(()),
            }
        }
        Action::Restore { from } => conflict(
            format!(
                "a concurrent {their_op} committed after version {} was read; restore version {} again to discard it",
                theirs.version - 1,
                from.version
            ),
            false,
        ),
    }
}

/// Whether a commit of `operation` may have added rows with keys not seen before (compaction
/// and schema backfills rewrite existing rows; deletes only remove rows).
fn adds_rows(operation: &Operation) -> bool {
    !matches!(
        operation,
        Operation::Compact { .. } | Operation::AlterSchema { .. } | Operation::Delete { .. } | Operation::Index { .. }
    )
}

/// For a transaction with a key check, fails when `theirs` (committed on top of `prev`) added a
/// row whose key the transaction also inserts.
async fn check_keys(
    store: &CommitStore,
    pending: &PendingCommit,
    prev: Option<&Manifest>,
    theirs: &Manifest,
) -> Result<()> {
    let Action::Mutate { keys: Some(keys), .. } = &pending.action else {
        return Ok(());
    };
    if !adds_rows(&theirs.transaction.operation) {
        return Ok(());
    }
    let added: Vec<&DataFile> = theirs
        .data_files
        .iter()
        .filter(|f| !prev.is_some_and(|p| p.data_files.iter().any(|o| o.path == f.path)))
        .collect();
    keys.check(store.location(), &added, theirs).await
}

/// Storage failures tolerated in one commit before giving up.
const MAX_IO_RETRIES: u32 = 3;

/// Commits `pending`, retrying over compatible concurrent commits. Returns the new manifest.
///
/// Every attempt first rebases over all versions committed after its base (found by listing,
/// not by probing `base + 1`), so a put never creates a version below the latest one, even when
/// the base is stale or cleanup removed versions in between.
pub(crate) async fn commit(store: &CommitStore, pending: &PendingCommit, max_retries: u32) -> Result<Arc<Manifest>> {
    if let Some(read) = &pending.read {
        read.check_writable()?;
    }
    let mut base = pending.read.clone();
    let mut io_failures = 0;
    for attempt in 0..=max_retries {
        base = match catch_up(store, pending, base).await? {
            CatchUp::Committed(ours) => return Ok(ours),
            CatchUp::Rebased(base) => base,
        };
        let candidate = apply(base.as_deref(), pending)?;
        check_files_exist(store, pending).await?;
        match store.try_commit(&candidate).await {
            Ok(CommitOutcome::Committed) => {
                store.write_hint(candidate.version).await;
                return Ok(Arc::new(candidate));
            }
            // The next attempt's catch-up reads the winner (or our own earlier attempt).
            Ok(CommitOutcome::VersionTaken) => {}
            // The put may or may not have happened: the catch-up finds out by the transaction id.
            Err(e @ Error::Io { .. }) => {
                if !store.version_exists(candidate.version).await.unwrap_or(false) {
                    if io_failures >= MAX_IO_RETRIES || attempt >= max_retries {
                        return Err(e);
                    }
                    io_failures += 1;
                }
            }
            Err(e) => return Err(e),
        }
        backoff(attempt).await;
    }
    if let CatchUp::Committed(ours) = catch_up(store, pending, base.clone()).await? {
        return Ok(ours);
    }
    Err(Error::CommitConflict {
        version: base.map_or(Some(1), |b| b.version.checked_add(1)).unwrap_or(u64::MAX),
        reason: format!("gave up after {max_retries} retries against concurrent writers"),
        retryable: true,
    })
}

/// Fails when a file the commit would reference is gone, so that no version ever references a
/// missing file. Cleanup keeps unreferenced files younger than its minimum age
/// ([`crate::MIN_FILE_AGE`]); this catches a cleanup that was told to ignore it.
async fn check_files_exist(store: &CommitStore, pending: &PendingCommit) -> Result<()> {
    // Owned paths and locations keep the future `Send` for any lifetime (a borrowed closure
    // here trips rustc's higher-ranked `Send` check in callers).
    let paths: Vec<String> = pending
        .action
        .required_paths()
        .into_iter()
        .map(str::to_string)
        .collect();
    let location = store.location().clone();
    let mut checks = futures::stream::iter(paths)
        .map(move |path| {
            let location = location.clone();
            async move { location.exists(&path).await.map(|found| (path, found)) }
        })
        .buffer_unordered(16);
    while let Some((path, found)) = checks.try_next().await? {
        if !found {
            return Err(Error::CommitConflict {
                version: pending.read.as_ref().map_or(0, |m| m.version),
                reason: format!(
                    "file {path}, which this {} needs, was removed before it committed \
                     (a cleanup that ignored the minimum file age?); run it again",
                    pending.action.operation().name()
                ),
                retryable: true,
            });
        }
    }
    Ok(())
}

/// Where a transaction stands after reading the versions committed since its base.
enum CatchUp {
    /// An earlier attempt of this transaction committed this version.
    Committed(Arc<Manifest>),
    /// The transaction was rebased onto this base (the latest version; `None`: no versions).
    Rebased(Option<Arc<Manifest>>),
}

/// Reads every version committed after `base`, checks that `pending` may be rebased over each,
/// and returns the latest as the new base.
///
/// Versions between `base` and the latest may be missing when cleanup removed them. Their
/// operations are unknown, so only an append, whose conflicts depend on the latest schema
/// alone, is rebased across such a gap; anything else fails with a retryable conflict.
async fn catch_up(store: &CommitStore, pending: &PendingCommit, base: Option<Arc<Manifest>>) -> Result<CatchUp> {
    let after = base.as_ref().map(|b| b.version);
    let newer = store.list_versions_after(after).await?;
    let mut loaded = Vec::with_capacity(newer.len());
    for version in newer {
        // A listed version that is gone was removed by a cleanup since: it becomes a gap.
        let theirs = match store.load_manifest(version).await {
            Err(Error::NotFound { .. }) => continue,
            other => other?,
        };
        if theirs.transaction.id == pending.id {
            store.write_hint(theirs.version).await;
            return Ok(CatchUp::Committed(Arc::new(theirs)));
        }
        loaded.push(Arc::new(theirs));
    }
    let Some(latest) = loaded.last().cloned() else {
        return Ok(CatchUp::Rebased(base));
    };
    let Some(base) = base else {
        return Err(Error::AlreadyExists {
            what: format!("the table (version {} exists)", latest.version),
        });
    };
    let contiguous = loaded
        .iter()
        .zip(1u64..)
        .all(|(m, i)| base.version.checked_add(i) == Some(m.version));
    if !contiguous && !matches!(pending.action, Action::Append { .. }) {
        let first = loaded.first().map_or(latest.version, |m| m.version);
        return Err(Error::CommitConflict {
            version: latest.version,
            reason: format!(
                "versions after {} (up to {}) were removed by cleanup while this {} ran; \
                 run it again on the latest version",
                base.version,
                first.saturating_sub(1),
                pending.action.operation().name()
            ),
            retryable: true,
        });
    }
    let mut prev = base;
    for theirs in loaded {
        check_rebase(pending, &theirs)?;
        theirs.check_writable()?;
        check_keys(store, pending, Some(prev.as_ref()), &theirs).await?;
        prev = theirs;
    }
    Ok(CatchUp::Rebased(Some(prev)))
}

pub(crate) async fn backoff(attempt: u32) {
    let cap_ms = (5u64 << attempt.min(8)).min(1000);
    let ms = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest_with(op: Operation, schema: Schema) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            reader_features: Default::default(),
            writer_features: Default::default(),
            version: 2,
            parent_version: Some(1),
            timestamp_ms: 0,
            max_field_id: schema.max_field_id(),
            primary_key: vec![],
            schema,
            next_row_id: 0,
            data_files: vec![],
            indexes: vec![],
            properties: Default::default(),
            transaction: Transaction {
                id: Uuid::new_v4(),
                read_version: 1,
                operation: op,
            },
        }
    }

    #[test]
    fn conflict_rules() {
        let schema = Schema { fields: vec![] };
        let read = Arc::new(manifest_with(Operation::Create { rows: 0 }, schema.clone()));
        let pending = |action| PendingCommit {
            id: Uuid::new_v4(),
            read: Some(read.clone()),
            action,
        };
        let append = pending(Action::Append { files: vec![] });
        let overwrite = pending(Action::Overwrite {
            schema: schema.clone(),
            max_field_id: 0,
            primary_key: vec![],
            files: vec![],
        });
        let restore = pending(Action::Restore { from: read.clone() });
        let their_append = manifest_with(Operation::Append { rows: 1 }, schema.clone());
        let their_overwrite = manifest_with(Operation::Overwrite { rows: 1 }, schema.clone());
        assert!(check_rebase(&append, &their_append).is_ok());
        assert!(check_rebase(&append, &their_overwrite).is_ok());
        assert!(check_rebase(&overwrite, &their_append).is_ok());
        assert!(matches!(
            check_rebase(&overwrite, &their_overwrite),
            Err(Error::CommitConflict { retryable: true, .. })
        ));
        assert!(matches!(
            check_rebase(&restore, &their_append),
            Err(Error::CommitConflict { retryable: false, .. })
        ));
        let other = manifest_with(Operation::Other, schema);
        assert!(check_rebase(&append, &other).is_err());
    }
}
