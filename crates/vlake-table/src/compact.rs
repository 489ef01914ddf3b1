//! Compaction and `optimize` (format-spec/commit.md#compaction).
//!
//! Compaction rewrites runs of small data files, and files with deleted rows, into new files
//! holding only their live rows. Rows keep their row ids: an output whose ids are not
//! consecutive gets a row-id file. Files are merged only with their neighbours in row-id
//! order and only with files covered by the same indexes, so an index that covered every
//! source of an output covers the output (its entries are remapped, nothing is rebuilt), and
//! the ids in every file stay ascending and disjoint from every other file's range.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::RecordBatch;
use futures::{StreamExt, TryStreamExt};
use roaring::RoaringTreemap;
use serde::Serialize;
use uuid::Uuid;
use vlake_format::layout::row_id_file_path;
use vlake_format::{DataFile, Error, FileFormat, Result, RowIdFile, Schema};

use crate::blob::descriptors;
use crate::rows::encode_bitmap;
use crate::txn::{remove_files, Action, CompactedGroup, StagedFile};
use crate::write::{write_with_blobs, WriteOptions};
use crate::{BatchStream, CleanupOptions, CleanupReport, ScanTask, Table, ROW_ID};

/// Knobs of a compaction.
#[derive(Clone, Debug)]
pub struct CompactOptions {
    /// Files with fewer live rows than this are merged; outputs hold at most this many rows.
    pub target_rows_per_file: usize,
    /// A blob file that only rewritten files point into is rewritten too when more than this
    /// fraction of its bytes belongs to no live row (0 drops every deleted blob's bytes).
    pub blob_garbage_ratio: f64,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            target_rows_per_file: WriteOptions::default().max_rows_per_file,
            blob_garbage_ratio: 0.1,
        }
    }
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CompactReport {
    /// Data files replaced.
    pub files_removed: usize,
    /// Data files written.
    pub files_added: usize,
    /// Live rows rewritten.
    pub rows_rewritten: u64,
    /// Deleted rows dropped from storage.
    pub deletions_materialized: u64,
    /// Blob files whose live values were copied into new blob files.
    pub blob_files_rewritten: usize,
}

/// Knobs of [`Table::optimize`].
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    /// The compaction.
    pub compact: CompactOptions,
    /// Cleanup removes versions and files older than this (default 7 days).
    pub cleanup_older_than: Duration,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        Self {
            compact: CompactOptions::default(),
            cleanup_older_than: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// What [`Table::optimize`] did.
#[derive(Clone, Debug, Serialize)]
pub struct OptimizeReport {
    /// The version after compaction and index updates.
    pub version: u64,
    /// The compaction.
    pub compaction: CompactReport,
    /// Indexes that got a segment over files they did not cover.
    pub indexes_updated: Vec<String>,
    /// The cleanup.
    pub cleanup: CleanupReport,
}

impl Table {
    /// Rewrites small files and files with deletions (see the module docs) as one commit.
    /// Returns this version, unchanged, when there is nothing to compact.
    pub async fn compact(&self, opts: &CompactOptions) -> Result<(Table, CompactReport)> {
        self.manifest().check_writable()?;
        let target = opts.target_rows_per_file.max(1) as u64;
        let plan = self.plan_compaction(target);
        let mut report = CompactReport::default();
        if plan.is_empty() {
            return Ok((self.clone(), report));
        }
        let mut groups = Vec::new();
        let mut written = Vec::new();
        for sources in plan {
            let schema = self.table_schema();
            let rewritten = match self.blobs_to_relocate(&sources, opts.blob_garbage_ratio).await {
                Ok(relocate) => {
                    let relocated = relocate.len();
                    let outputs = self.rewrite(&sources, target as usize, schema, Ok, relocate, &mut written);
                    outputs.await.map(|outputs| (outputs, relocated))
                }
                Err(e) => Err(e),
            };
            match rewritten {
                Ok((outputs, blob_files_rewritten)) => {
                    report.blob_files_rewritten += blob_files_rewritten;
                    report.files_removed += sources.len();
                    report.files_added += outputs.len();
                    report.rows_rewritten += outputs.iter().map(|f| f.num_rows).sum::<u64>();
                    report.deletions_materialized += sources
                        .iter()
                        .map(|f| f.deletion.as_ref().map_or(0, |d| d.num_deleted))
                        .sum::<u64>();
                    groups.push(CompactedGroup { sources, outputs });
                }
                Err(e) => {
                    remove_files(self.location(), written.iter().map(String::as_str)).await;
                    return Err(e);
                }
            }
        }
        let table = self.commit_action(Action::Compact { groups, written }).await?;
        Ok((table, report))
    }

    /// Compacts, brings every index up to date with the files it does not cover, then cleans
    /// up versions and files older than `opts.cleanup_older_than`.
    pub async fn optimize(&self, opts: &OptimizeOptions) -> Result<(Table, OptimizeReport)> {
        let (mut table, compaction) = self.compact(&opts.compact).await?;
        let mut indexes_updated = Vec::new();
        let names: Vec<String> = table.manifest().indexes.iter().map(|i| i.name.clone()).collect();
        for name in names {
            let updated = table.update_index(&name).await?;
            if updated.version() != table.version() {
                indexes_updated.push(name);
            }
            table = updated;
        }
        let cleanup = table.cleanup(&CleanupOptions::new(opts.cleanup_older_than)).await?;
        let report = OptimizeReport {
            version: table.version(),
            compaction,
            indexes_updated,
            cleanup,
        };
        Ok((table, report))
    }

    /// Groups of files to rewrite together: runs of neighbours in row-id order that are
    /// small or have deletions, are covered by the same indexes, and fit `target` rows.
    fn plan_compaction(&self, target: u64) -> Vec<Vec<DataFile>> {
        let manifest = self.manifest();
        let mut files: Vec<&DataFile> = manifest.data_files.iter().collect();
        files.sort_by_key(|f| f.row_id_start);
        let live = |f: &DataFile| f.num_rows - f.deletion.as_ref().map_or(0, |d| d.num_deleted);
        let coverage = |f: &DataFile| -> Vec<Uuid> {
            manifest
                .indexes
                .iter()
                .filter(|i| i.covered_files.contains(&f.path))
                .map(|i| i.id)
                .collect()
        };
        let mut groups = Vec::new();
        let mut current: Vec<DataFile> = Vec::new();
        let mut rows = 0;
        let close = |current: &mut Vec<DataFile>, groups: &mut Vec<Vec<DataFile>>| {
            let group = std::mem::take(current);
            if group.len() > 1 || group.iter().any(|f| f.deletion.is_some()) {
                groups.push(group);
            }
        };
        for f in files {
            if f.deletion.is_none() && live(f) >= target {
                close(&mut current, &mut groups);
                rows = 0;
                continue;
            }
            let fits = current
                .first()
                .is_none_or(|first| coverage(first) == coverage(f) && rows + live(f) <= target);
            if !fits {
                close(&mut current, &mut groups);
                rows = 0;
            }
            rows += live(f);
            current.push(f.clone());
        }
        close(&mut current, &mut groups);
        groups
    }

    /// The blob files of `sources` to rewrite: those that no other data file points into and
    /// whose bytes belong to the live rows of `sources` for less than `1 - garbage_ratio`.
    async fn blobs_to_relocate(&self, sources: &[DataFile], garbage_ratio: f64) -> Result<BTreeSet<String>> {
        let fields: Vec<_> = self
            .table_schema()
            .fields
            .iter()
            .filter(|f| f.is_blob())
            .cloned()
            .collect();
        if fields.is_empty() {
            return Ok(BTreeSet::new());
        }
        let mut live: BTreeMap<String, u64> = BTreeMap::new();
        for file in sources {
            let mut batches = ScanTask::of_file(file, fields.clone(), false)
                .execute(self.location(), self.session())
                .await?;
            while let Some(batch) = batches.try_next().await? {
                for column in batch.columns() {
                    for d in descriptors(column.as_ref())?.into_iter().flatten() {
                        if let Some(path) = d.path {
                            *live.entry(path).or_default() += d.size;
                        }
                    }
                }
            }
        }
        let is_source = |p: &str| sources.iter().any(|s| s.path == p);
        let shared: BTreeSet<&str> = self
            .manifest()
            .data_files
            .iter()
            .filter(|f| !is_source(&f.path))
            .flat_map(|f| f.blob_files.iter().map(|b| b.path.as_str()))
            .collect();
        Ok(sources
            .iter()
            .flat_map(|f| &f.blob_files)
            .filter(|b| !shared.contains(b.path.as_str()))
            .filter(|b| {
                let garbage = b.size_bytes.saturating_sub(live.get(&b.path).copied().unwrap_or(0));
                garbage as f64 > garbage_ratio * b.size_bytes as f64
            })
            .map(|b| b.path.clone())
            .collect())
    }

    /// Writes the live rows of `sources` (neighbours in row-id order), passed through
    /// `transform` into rows of `output`, into new files that keep their row ids; the blob files
    /// in `relocate` are copied (without their garbage) into new ones. The paths written are
    /// added to `written`.
    pub(crate) async fn rewrite(
        &self,
        sources: &[DataFile],
        max_rows: usize,
        output: &Schema,
        transform: impl Fn(RecordBatch) -> Result<RecordBatch> + Send + Sync + 'static,
        relocate: BTreeSet<String>,
        written: &mut Vec<String>,
    ) -> Result<Vec<DataFile>> {
        let blobs = self.blob_writer().relocating(relocate);
        let schema = self.table_schema().clone();
        let ids: Arc<Mutex<Vec<u64>>> = Arc::default();
        let location = self.location().clone();
        let session = self.session().clone();
        let tasks: Vec<ScanTask> = sources
            .iter()
            .map(|file| ScanTask::of_file(file, schema.fields.clone(), true))
            .collect();
        let recorder = ids.clone();
        let width = schema.fields.len();
        let rows = futures::stream::iter(tasks)
            .then(move |task| {
                let (location, session) = (location.clone(), session.clone());
                async move { task.execute(&location, &session).await }
            })
            .try_flatten()
            .map(move |batch| {
                let batch = batch?;
                let column = batch
                    .column_by_name(ROW_ID)
                    .ok_or_else(|| Error::Internal("scan lost _rowid".into()))?;
                let mut guard = recorder.lock().unwrap_or_else(|e| e.into_inner());
                guard.extend_from_slice(column.as_primitive::<UInt64Type>().values());
                transform(batch.project(&(0..width).collect::<Vec<_>>())?)
            });
        let opts = WriteOptions {
            max_rows_per_file: max_rows,
            ..WriteOptions::default()
        };
        let rows = BatchStream::new(Arc::new(output.to_arrow_read()), rows);
        let files = write_with_blobs(self.location(), output, rows, &opts, blobs).await?;
        written.extend(files.iter().flat_map(StagedFile::created).map(String::from));
        let ids = std::mem::take(&mut *ids.lock().unwrap_or_else(|e| e.into_inner()));
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::Internal(
                "compacted rows are not in ascending row-id order".into(),
            ));
        }
        let mut outputs = Vec::with_capacity(files.len());
        let mut next = 0usize;
        for f in files {
            let end = usize::try_from(f.num_rows).ok().and_then(|n| next.checked_add(n));
            let chunk = end
                .and_then(|end| ids.get(next..end))
                .ok_or_else(|| Error::Internal(format!("{} holds more rows than the compaction read", f.path)))?;
            next += chunk.len();
            let first = *chunk
                .first()
                .ok_or_else(|| Error::Internal(format!("{} is empty", f.path)))?;
            let consecutive = chunk.last() == Some(&(first + f.num_rows - 1));
            let row_ids = if consecutive {
                None
            } else {
                let path = row_id_file_path(&Uuid::new_v4().simple().to_string());
                written.push(path.clone());
                let bitmap = RoaringTreemap::from_sorted_iter(chunk.iter().copied())
                    .map_err(|e| Error::Internal(format!("row ids out of order: {e}")))?;
                self.location().put(&path, encode_bitmap(&bitmap)?).await?;
                Some(RowIdFile { path })
            };
            outputs.push(DataFile {
                path: f.path,
                format: FileFormat::Parquet,
                num_rows: f.num_rows,
                size_bytes: f.size_bytes,
                row_id_start: first,
                stats: f.stats,
                deletion: None,
                row_ids,
                blob_files: f.blob_files,
            });
        }
        Ok(outputs)
    }
}
