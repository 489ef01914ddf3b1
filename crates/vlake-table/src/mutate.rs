//! Deletes and updates by predicate (format-spec/commit.md#deletes-and-updates).
//!
//! A delete writes, for every data file with matching rows, a new deletion file listing all its
//! deleted positions (the old ones and the new ones); a file whose rows are all deleted is
//! dropped. An update is a delete of the matching rows plus an append of their new values, in
//! one commit: the rewritten rows get new row ids.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, RecordBatch};
use futures::{StreamExt, TryStreamExt};
use roaring::RoaringTreemap;
use uuid::Uuid;
use vlake_format::layout::deletion_file_path;
use vlake_format::{DataFile, DeletionFile, Error, Operation, Result};

use crate::rows::{encode_bitmap, FileRows};
use crate::txn::{remove_files, Action, FileChange, StagedFile};
use crate::write::{write_with_blobs, WriteOptions};
use crate::{Assignment, BatchStream, Predicate, Table, ROW_ID};

/// Matched positions, by data file path.
type Matches = Arc<Mutex<BTreeMap<String, RoaringTreemap>>>;

impl Table {
    /// Deletes the rows matching `filter` as one commit and returns the new version (this
    /// version, unchanged, when no row matches). Data files are not rewritten: each file with
    /// matching rows gets a deletion file, and a file whose rows are all deleted is dropped.
    pub async fn delete(&self, filter: &Predicate) -> Result<Table> {
        self.manifest().check_writable()?;
        let (stream, matches) = self.matching(filter, &filter.columns())?;
        stream.collect_batches().await?;
        let matches = take(&matches);
        if matches.is_empty() {
            return Ok(self.clone());
        }
        let (changes, written, rows) = self.deletion_changes(matches).await?;
        self.commit_action(Action::Mutate {
            operation: Operation::Delete { rows },
            changes,
            appended: vec![],
            written,
            keys: None,
        })
        .await
    }

    /// Sets columns of the rows matching `filter` (every row when `None`) to the values of
    /// `assignments`, computed from each row's current values, as one commit: the old rows are
    /// deleted and their new values appended (with new row ids). Returns this version,
    /// unchanged, when no row matches.
    pub async fn update(
        &self,
        assignments: &[Assignment],
        filter: Option<&Predicate>,
        opts: &WriteOptions,
    ) -> Result<Table> {
        self.manifest().check_writable()?;
        let schema = self.table_schema().clone();
        for (i, a) in assignments.iter().enumerate() {
            let field = schema.field(&a.column)?;
            if self.manifest().primary_key.contains(&field.id) {
                return Err(Error::invalid(format!(
                    "column '{}' is part of the primary key and cannot be updated; upsert the rows with their new keys and delete the old ones",
                    a.column
                )));
            }
            if field.is_blob() {
                return Err(Error::unsupported(format!(
                    "assigning BLOB column '{}' in an update (append the new values instead)",
                    a.column
                )));
            }
            if assignments[..i].iter().any(|b| b.column == a.column) {
                return Err(Error::invalid(format!("column '{}' is assigned twice", a.column)));
            }
            for c in a.value.columns() {
                schema.field(c)?;
            }
        }
        if assignments.is_empty() {
            return Err(Error::invalid("an update needs at least one assignment"));
        }
        let everything = Predicate::Const(true);
        let filter = filter.unwrap_or(&everything);
        let (stream, matches) = self.matching(filter, &schema.column_names())?;
        let arrow_schema = self.schema().clone();
        let assignments = assignments.to_vec();
        let out_schema = arrow_schema.clone();
        let updated = stream.map(move |batch| {
            let batch = batch?;
            let columns = out_schema
                .fields()
                .iter()
                .enumerate()
                .map(
                    |(i, field)| match assignments.iter().find(|a| &a.column == field.name()) {
                        Some(a) => a.value.evaluate(&batch, field.data_type(), &a.column),
                        None => Ok(batch.column(i).clone()),
                    },
                )
                .collect::<Result<Vec<ArrayRef>>>()?;
            Ok(RecordBatch::try_new(out_schema.clone(), columns)?)
        });
        // Rewritten rows keep pointing at the blobs they had.
        let blobs = self.blob_writer();
        let updated = BatchStream::new(arrow_schema, updated);
        let files = write_with_blobs(self.location(), &schema, updated, opts, blobs).await?;
        let data_paths: Vec<String> = files.iter().flat_map(StagedFile::created).map(String::from).collect();
        let matches = take(&matches);
        if matches.is_empty() {
            remove_files(self.location(), data_paths.iter().map(String::as_str)).await;
            return Ok(self.clone());
        }
        let (changes, mut written, rows) = match self.deletion_changes(matches).await {
            Ok(c) => c,
            Err(e) => {
                remove_files(self.location(), data_paths.iter().map(String::as_str)).await;
                return Err(e);
            }
        };
        written.extend(data_paths);
        self.commit_action(Action::Mutate {
            operation: Operation::Update { rows },
            changes,
            appended: files,
            written,
            keys: None,
        })
        .await
    }

    /// The rows deleted or updated by the commit that made this version, as its manifest
    /// records them, when this table is what [`Table::delete`] or [`Table::update`] returned
    /// for `base` (0 when it is `base`'s version: nothing matched and nothing was committed).
    /// Counting `base`'s rows minus this version's is wrong when other writers committed in
    /// between: this version has their rows too.
    pub fn mutated_rows(&self, base: &Table) -> u64 {
        match &self.manifest().transaction.operation {
            _ if self.version() == base.version() => 0,
            Operation::Delete { rows } | Operation::Update { rows } => *rows,
            _ => 0,
        }
    }

    /// Scans the rows matching `filter` with `columns` and `_rowid`, recording the matched
    /// positions of every file as the batches pass.
    fn matching(&self, filter: &Predicate, columns: &[&str]) -> Result<(BatchStream, Matches)> {
        let scanner = self.scan().columns(columns).filter(filter.clone()).with_row_id(true);
        let schema = scanner.output_schema()?;
        let tasks = scanner.plan()?.tasks;
        let matches: Matches = Arc::default();
        let location = self.location().clone();
        let session = self.session().clone();
        let recorder = matches.clone();
        let stream = futures::stream::iter(tasks)
            .then(move |task| {
                let (location, session, recorder) = (location.clone(), session.clone(), recorder.clone());
                async move {
                    let rows = FileRows::load(&location, &session, &task.file).await?;
                    let path = task.file.path.clone();
                    let batches = task.execute(&location, &session).await?;
                    Ok::<_, Error>(batches.map(move |batch| {
                        let batch = batch?;
                        record(&batch, &rows, &path, &recorder)?;
                        Ok(batch)
                    }))
                }
            })
            .try_flatten();
        let out_schema = schema.clone();
        let without_ids = stream.map(move |batch: Result<RecordBatch>| {
            let batch = batch?;
            let keep: Vec<usize> = (0..out_schema.fields().len() - 1).collect();
            Ok(batch.project(&keep)?)
        });
        let mut fields = schema.fields().to_vec();
        fields.pop();
        let schema = Arc::new(arrow_schema::Schema::new(fields));
        Ok((BatchStream::new(schema, without_ids), matches))
    }

    /// New deletion files for the matched positions: one change per file, which drops the file
    /// when all its rows are deleted. Returns the changes, the files written and the number of
    /// rows newly deleted.
    pub(crate) async fn deletion_changes(
        &self,
        matches: BTreeMap<String, RoaringTreemap>,
    ) -> Result<(Vec<FileChange>, Vec<String>, u64)> {
        let mut changes = Vec::new();
        let mut written = Vec::new();
        let mut rows = 0;
        let result: Result<()> = async {
            for (path, positions) in matches {
                let old = self
                    .manifest()
                    .data_files
                    .iter()
                    .find(|f| f.path == path)
                    .ok_or_else(|| Error::Internal(format!("matched rows of {path}, which is not in the version")))?;
                let mut deleted = FileRows::load(self.location(), self.session(), old).await?.deleted();
                let before = deleted.len();
                deleted |= positions;
                rows += deleted.len() - before;
                let new = if deleted.len() == old.num_rows {
                    None
                } else {
                    let file = deletion_file_path(&Uuid::new_v4().simple().to_string());
                    written.push(file.clone());
                    self.location().put(&file, encode_bitmap(&deleted)?).await?;
                    Some(DataFile {
                        deletion: Some(DeletionFile {
                            path: file,
                            num_deleted: deleted.len(),
                        }),
                        ..old.clone()
                    })
                };
                changes.push(FileChange { old: old.clone(), new });
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => Ok((changes, written, rows)),
            Err(e) => {
                remove_files(self.location(), written.iter().map(String::as_str)).await;
                Err(e)
            }
        }
    }
}

/// Adds the positions of `batch`'s rows (ids in its last column) to the matches of `path`.
fn record(batch: &RecordBatch, rows: &FileRows, path: &str, matches: &Matches) -> Result<()> {
    let ids = batch
        .column_by_name(ROW_ID)
        .ok_or_else(|| Error::Internal("scan lost _rowid".into()))?
        .as_primitive::<UInt64Type>();
    let mut guard = matches.lock().unwrap_or_else(|e| e.into_inner());
    let positions = guard.entry(path.to_string()).or_default();
    for id in ids.values() {
        let p = rows
            .position_of(*id)
            .ok_or_else(|| Error::Internal(format!("row {id} is not a live row of {path}")))?;
        positions.insert(p);
    }
    Ok(())
}

fn take(matches: &Matches) -> BTreeMap<String, RoaringTreemap> {
    std::mem::take(&mut *matches.lock().unwrap_or_else(|e| e.into_inner()))
}
