//! Applying a transaction to the manifest of its base version.

use std::collections::HashSet;

use vlake_format::manifest::{BLOB_FILES, COLUMN_DEFAULTS, DELETION_FILES, PRIMARY_KEY, ROW_ID_FILES};
use vlake_format::{DataFile, Error, FileFormat, Manifest, Result, Transaction, FORMAT_VERSION};

use super::action::{Action, CompactedGroup, PendingCommit};
use super::StagedFile;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Data file entries for `files`, with row ids from `next_row_id`; fails when the row ids would
/// overflow.
fn new_files(files: &[StagedFile], mut next_row_id: u64) -> Result<(Vec<DataFile>, u64)> {
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
pub(crate) fn apply(base: Option<&Manifest>, pending: &PendingCommit) -> Result<Manifest> {
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
    if let Some(path) = repeated_path(&next) {
        return Err(Error::CommitConflict {
            version: base.version,
            reason: format!(
                "data file {path} is already part of version {}; it is committed once",
                base.version
            ),
            retryable: false,
        });
    }
    add_features(&mut next);
    Ok(next)
}

/// A data file `manifest` lists twice (a staged write committed twice), if any.
fn repeated_path(manifest: &Manifest) -> Option<&str> {
    let mut seen = HashSet::with_capacity(manifest.data_files.len());
    manifest
        .data_files
        .iter()
        .map(|f| f.path.as_str())
        .find(|p| !seen.insert(*p))
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
