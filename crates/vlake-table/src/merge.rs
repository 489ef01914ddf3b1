//! Upserts (merge-insert) keyed by the primary key, and the uniqueness of keys
//! (format-spec/commit.md#upserts-and-primary-keys).
//!
//! The source rows are written to new data files first, streaming. Matching then reads only key
//! columns: the keys of the new files are loaded into a hash table one hash partition at a time
//! (at most [`MergeInsert::keys_per_pass`] keys per pass, so memory stays bounded however large
//! the merge), and the keys of the table's live rows are probed against it. Matched target rows
//! get deletion files; source rows that must not be inserted get deletion files in the new files.
//! A concurrent commit that inserted one of the keys this merge inserts makes the commit fail
//! with a retryable conflict, and the merge then matches again against the newer version, so no
//! two live rows ever share a key.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, RecordBatch};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_row::{RowConverter, Rows, SortField};
use futures::future::BoxFuture;
use futures::StreamExt;
use roaring::RoaringTreemap;
use uuid::Uuid;
use vlake_format::layout::deletion_file_path;
use vlake_format::{DataFile, DataType, DeletionFile, Error, Field, FileFormat, Manifest, Operation, Result, Schema};
use vlake_io::TableLocation;

use crate::blob::BlobWriter;
use crate::rows::{encode_bitmap, FileRows};
use crate::session::Session;
use crate::txn::{commit_planned, remove_files, Action, PendingCommit, Plan, RowCheck, StagedFile, StagedFiles};
use crate::write::{write_with_blobs, WriteOptions};
use crate::{BatchStream, Predicate, ScanTask, Table};

/// What happens to a source row whose key matches a live row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenMatched {
    /// The source row replaces the table row (it gets a new row id).
    UpdateAll,
    /// The table row stays; the source row is dropped.
    DoNothing,
    /// The merge fails with [`Error::AlreadyExists`] (an insert).
    Fail,
}

/// What happens to a source row whose key is not in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenNotMatched {
    /// It is inserted.
    InsertAll,
    /// It is dropped.
    DoNothing,
}

/// What happens to live table rows whose key is not in the source.
#[derive(Clone, Debug, PartialEq)]
pub enum WhenNotMatchedBySource {
    /// They stay.
    Keep,
    /// They are deleted (the table becomes the source, by key).
    Delete,
    /// Those matching the predicate are deleted.
    DeleteIf(Predicate),
}

impl std::str::FromStr for WhenMatched {
    type Err = Error;

    /// `update`, `nothing` or `fail`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "update" => Ok(Self::UpdateAll),
            "nothing" => Ok(Self::DoNothing),
            "fail" => Ok(Self::Fail),
            other => Err(Error::invalid(format!(
                "when_matched must be 'update', 'nothing' or 'fail', not '{other}'"
            ))),
        }
    }
}

impl std::str::FromStr for WhenNotMatched {
    type Err = Error;

    /// `insert` or `nothing`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "insert" => Ok(Self::InsertAll),
            "nothing" => Ok(Self::DoNothing),
            other => Err(Error::invalid(format!(
                "when_not_matched must be 'insert' or 'nothing', not '{other}'"
            ))),
        }
    }
}

impl std::str::FromStr for WhenNotMatchedBySource {
    type Err = Error;

    /// `keep`, `delete`, or an SQL condition choosing the unmatched rows to delete.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "keep" => Ok(Self::Keep),
            "delete" => Ok(Self::Delete),
            condition => Ok(Self::DeleteIf(Predicate::parse(condition)?)),
        }
    }
}

/// How a merge treats matched and unmatched rows.
#[derive(Clone, Debug, PartialEq)]
pub struct MergeInsert {
    /// The key columns; empty means the table's primary key. A table with a primary key merges
    /// on it; other tables may merge on any key columns, without the uniqueness guarantee.
    pub on: Vec<String>,
    /// Source rows whose key is in the table.
    pub when_matched: WhenMatched,
    /// Source rows whose key is not in the table.
    pub when_not_matched: WhenNotMatched,
    /// Table rows whose key is not in the source.
    pub when_not_matched_by_source: WhenNotMatchedBySource,
    /// Source keys held in memory at once; larger merges match in several passes over hash
    /// partitions of the keys.
    pub keys_per_pass: usize,
}

impl Default for MergeInsert {
    fn default() -> Self {
        Self::upsert()
    }
}

impl MergeInsert {
    /// Update matched rows, insert the others.
    pub fn upsert() -> Self {
        Self {
            on: vec![],
            when_matched: WhenMatched::UpdateAll,
            when_not_matched: WhenNotMatched::InsertAll,
            when_not_matched_by_source: WhenNotMatchedBySource::Keep,
            keys_per_pass: 1 << 21,
        }
    }

    /// Insert every source row; fail when a key is already in the table.
    pub fn insert_only() -> Self {
        Self {
            when_matched: WhenMatched::Fail,
            ..Self::upsert()
        }
    }

    fn is_insert(&self) -> bool {
        self.when_matched == WhenMatched::Fail
            && self.when_not_matched == WhenNotMatched::InsertAll
            && self.when_not_matched_by_source == WhenNotMatchedBySource::Keep
    }
}

/// What a merge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MergeReport {
    /// Source rows inserted.
    pub inserted: u64,
    /// Table rows replaced by source rows.
    pub updated: u64,
    /// Table rows deleted because the source did not match them.
    pub deleted: u64,
}

impl Table {
    /// Merges `data` into the table by key as one commit and returns the new version with what
    /// it did. `data` must have the key columns, without nulls, and no key twice. Returns this
    /// version, unchanged, when nothing changes.
    pub async fn merge_insert(
        &self,
        data: BatchStream,
        merge: &MergeInsert,
        opts: &WriteOptions,
    ) -> Result<(Table, MergeReport)> {
        self.manifest().check_writable()?;
        let key = self.merge_key(merge)?;
        let names: Vec<String> = key.iter().map(|f| f.name.clone()).collect();
        let schema = self.table_schema();
        let data = require_keys(data, names);
        let files = write_with_blobs(self.location(), schema, data, opts, self.blob_writer()).await?;
        let mut inputs = StagedFiles::new(self.commit_store().clone());
        inputs.adopt(files.iter().flat_map(StagedFile::created));
        let source: Vec<DataFile> = files.iter().map(uncommitted).collect();
        let (files, source, key) = (&files[..], &source[..], &key[..]);
        let retries = self.config().max_commit_retries;
        let result = commit_planned(
            self.commit_store(),
            self.manifest().clone(),
            retries,
            &mut inputs,
            |read| {
                let table = self.with_manifest(read);
                async move {
                    if table.table_schema() != self.table_schema() {
                        return Err(Error::CommitConflict {
                            version: table.version(),
                            reason: "a concurrent commit changed the schema; the rows were written for the old one"
                                .into(),
                            retryable: false,
                        });
                    }
                    plan_commit(&table, files, source, key, merge).await
                }
            },
        )
        .await;
        // Source files no version references (all their rows dropped, or the merge failed).
        inputs.remove_unreferenced().await;
        let (manifest, (table, report)) = result?;
        Ok((manifest.map_or(table, |m| self.with_manifest(m)), report))
    }

    /// The key fields a merge uses.
    fn merge_key(&self, merge: &MergeInsert) -> Result<Vec<Field>> {
        let primary = self.primary_key_names();
        let names = match (merge.on.is_empty(), primary.is_empty()) {
            (true, true) => {
                return Err(Error::invalid(
                    "the table has no primary key: name the key columns to merge on",
                ))
            }
            (true, false) => primary,
            (false, true) => merge.on.clone(),
            (false, false) if merge.on == primary => primary,
            (false, false) => {
                return Err(Error::invalid(format!(
                    "the table's primary key is ({}); a merge on ({}) could create duplicate keys",
                    primary.join(", "),
                    merge.on.join(", ")
                )))
            }
        };
        let schema = self.table_schema();
        let ids = key_field_ids(schema, &names)?;
        Ok(ids.iter().filter_map(|id| schema.field_by_id(*id)).cloned().collect())
    }
}

/// What a merge makes of `table`'s version: nothing to commit, or the commit that matches the
/// written source `files` (`source`, as data files) against it, owning the deletion files it
/// wrote for that.
async fn plan_commit(
    table: &Table,
    files: &[StagedFile],
    source: &[DataFile],
    key: &[Field],
    merge: &MergeInsert,
) -> Result<Plan<(Table, MergeReport)>> {
    let plan = plan_merge(table, source, key, merge).await?;
    let report = plan.report;
    if plan.target.is_empty() && report.inserted + report.updated == 0 {
        return Ok(Plan::Unchanged((table.clone(), report)));
    }
    let mut staged = StagedFiles::new(table.commit_store().clone());
    match merge_commit(table, files, plan, key, merge, &mut staged).await {
        Ok(pending) => Ok(Plan::Commit {
            pending: Box::new(pending),
            staged,
            outcome: (table.clone(), report),
        }),
        Err(e) => {
            staged.remove_unreferenced().await;
            Err(e)
        }
    }
}

/// The commit of one merge attempt on `table` as `plan` says, with the source `files` (those
/// whose rows are all dropped left out): writes the deletion files it needs, owned by `staged`
/// from before each is written.
async fn merge_commit(
    table: &Table,
    files: &[StagedFile],
    plan: MergePlan,
    key: &[Field],
    merge: &MergeInsert,
    staged: &mut StagedFiles,
) -> Result<PendingCommit> {
    let report = plan.report;
    let (changes, mut written, _) = table.deletion_changes(plan.target).await?;
    staged.adopt(written.iter().map(String::as_str));
    let mut appended = Vec::new();
    let mut orphans = Vec::new();
    for (file, skip) in files.iter().zip(plan.dropped) {
        if skip.len() == file.num_rows {
            orphans.extend(file.new_blobs.iter().cloned());
            continue;
        }
        let mut file = file.clone();
        if !skip.is_empty() {
            let path = deletion_file_path(&Uuid::new_v4().simple().to_string());
            staged.adopt([path.as_str()]);
            written.push(path.clone());
            table.location().put(&path, encode_bitmap(&skip)?).await?;
            file.deletion = Some(DeletionFile {
                path,
                num_deleted: skip.len(),
            });
        }
        appended.push(file);
    }
    adopt_blobs(&mut appended, orphans);
    let operation = match merge.is_insert() {
        true => Operation::Append { rows: report.inserted },
        false => Operation::Upsert {
            inserted: report.inserted,
            updated: report.updated,
            deleted: report.deleted,
        },
    };
    let keys = KeyCheck {
        fields: key.to_vec(),
        files: appended.iter().map(uncommitted).collect(),
        sees_every_row: merge.when_not_matched_by_source != WhenNotMatchedBySource::Keep,
        session: table.session().clone(),
    };
    let pending = PendingCommit {
        id: Uuid::new_v4(),
        read: Some(table.manifest().clone()),
        action: Action::Mutate {
            operation,
            changes,
            appended,
            written,
            keys: Some(Box::new(keys)),
        },
    };
    Ok(pending)
}

/// Hands the blob files `orphans`, owned by written files that are not kept, to the first kept
/// file that points into each (those no kept file points into are not committed).
fn adopt_blobs(kept: &mut [StagedFile], orphans: Vec<String>) {
    for blob in orphans {
        if let Some(owner) = kept.iter_mut().find(|f| f.blob_files.iter().any(|b| b.path == blob)) {
            owner.new_blobs.push(blob);
        }
    }
}

/// A written file as a data file of its own (row ids are its positions).
fn uncommitted(f: &StagedFile) -> DataFile {
    DataFile {
        path: f.path.clone(),
        format: FileFormat::Parquet,
        num_rows: f.num_rows,
        size_bytes: f.size_bytes,
        row_id_start: 0,
        stats: vec![],
        deletion: f.deletion.clone(),
        row_ids: None,
        blob_files: f.blob_files.clone(),
    }
}

/// The field ids of the key columns `names`, checked: top-level, of a type with exact
/// equality, none twice.
pub(crate) fn key_field_ids(schema: &Schema, names: &[String]) -> Result<Vec<i32>> {
    let mut ids = Vec::with_capacity(names.len());
    for name in names {
        let field = schema.field(name)?;
        let keyable = matches!(
            field.data_type,
            DataType::Boolean
                | DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::Uint8
                | DataType::Uint16
                | DataType::Uint32
                | DataType::Uint64
                | DataType::Utf8
                | DataType::LargeUtf8
                | DataType::Binary
                | DataType::LargeBinary
                | DataType::Date32
                | DataType::Timestamp { .. }
                | DataType::Decimal128 { .. }
        ) && !field.is_blob();
        if !keyable {
            return Err(Error::invalid(format!(
                "column '{name}' cannot be a key column: keys are integers, strings, binaries (not BLOB columns), dates, timestamps, decimals or booleans"
            )));
        }
        if ids.contains(&field.id) {
            return Err(Error::invalid(format!("key column '{name}' is named twice")));
        }
        ids.push(field.id);
    }
    Ok(ids)
}

/// Writes `data` (BLOB values through `blobs`) as new data files of a table whose primary key
/// is `key` (field ids), failing on null or duplicate keys.
pub(crate) async fn write_keyed_files(
    location: &TableLocation,
    session: &Session,
    schema: &Schema,
    key: &[i32],
    data: BatchStream,
    opts: &WriteOptions,
    blobs: BlobWriter,
) -> Result<Vec<StagedFile>> {
    if key.is_empty() {
        return write_with_blobs(location, schema, data, opts, blobs).await;
    }
    let fields: Vec<Field> = key.iter().filter_map(|id| schema.field_by_id(*id)).cloned().collect();
    let names = fields.iter().map(|f| f.name.clone()).collect();
    let files = write_with_blobs(location, schema, require_keys(data, names), opts, blobs).await?;
    let source: Vec<DataFile> = files.iter().map(uncommitted).collect();
    let passes = passes(&source, MergeInsert::default().keys_per_pass);
    for pass in 0..passes {
        if let Err(e) = load_source(location, session, &source, &fields, pass, passes).await {
            remove_files(location, files.iter().flat_map(StagedFile::created)).await;
            return Err(e);
        }
    }
    Ok(files)
}

/// Fails batches that lack a key column or have null keys.
fn require_keys(data: BatchStream, names: Vec<String>) -> BatchStream {
    let schema = data.schema().clone();
    BatchStream::new(
        schema,
        data.map(move |batch| {
            let batch = batch?;
            for name in &names {
                let column = batch
                    .column_by_name(name)
                    .ok_or_else(|| Error::invalid(format!("the input lacks key column '{name}'")))?;
                if column.null_count() > 0 {
                    return Err(Error::invalid(format!(
                        "key column '{name}' has {} null values; keys cannot be null",
                        column.null_count()
                    )));
                }
            }
            Ok(batch)
        }),
    )
}

/// The outcome of matching.
struct MergePlan {
    /// Positions of table rows to delete, by data file path.
    target: BTreeMap<String, RoaringTreemap>,
    /// Positions of source rows not to insert, one bitmap per source file.
    dropped: Vec<RoaringTreemap>,
    report: MergeReport,
}

/// A source row in the hash table of one pass.
struct SourceRow {
    file: usize,
    position: u64,
    matched: bool,
}

type KeyHasher = BuildHasherDefault<DefaultHasher>;

fn key_hash(key: &[u8]) -> u64 {
    KeyHasher::default().hash_one(key)
}

/// The number of passes that keeps at most `keys_per_pass` source keys in memory.
fn passes(source: &[DataFile], keys_per_pass: usize) -> u64 {
    let rows: u64 = source.iter().map(|f| f.num_rows).sum();
    rows.div_ceil(keys_per_pass.max(1) as u64).max(1)
}

/// Matches the source files' keys against the live rows of `table`.
async fn plan_merge(table: &Table, source: &[DataFile], key: &[Field], merge: &MergeInsert) -> Result<MergePlan> {
    let mut plan = MergePlan {
        target: BTreeMap::new(),
        dropped: vec![RoaringTreemap::new(); source.len()],
        report: MergeReport::default(),
    };
    let filter = match &merge.when_not_matched_by_source {
        WhenNotMatchedBySource::DeleteIf(p) => Some(p),
        _ => None,
    };
    let mut extra = Vec::new();
    for name in filter.map(|p| p.columns()).unwrap_or_default() {
        let f = table.table_schema().field(name)?;
        if !key.contains(f) && !extra.contains(f) {
            extra.push(f.clone());
        }
    }
    let location = table.location();
    let passes = passes(source, merge.keys_per_pass);
    for pass in 0..passes {
        let mut rows = load_source(location, table.session(), source, key, pass, passes).await?;
        for file in &table.manifest().data_files {
            let matched = plan.target.entry(file.path.clone()).or_default();
            let mut on_keys = |batch: &RecordBatch, keys: &Rows, positions: &[u64]| -> Result<()> {
                let delete_unmatched = match &merge.when_not_matched_by_source {
                    WhenNotMatchedBySource::Keep => None,
                    WhenNotMatchedBySource::Delete => Some(None),
                    WhenNotMatchedBySource::DeleteIf(p) => Some(Some(p.evaluate(batch)?)),
                };
                for (j, position) in positions.iter().enumerate() {
                    let k = keys.row(j);
                    if key_hash(k.as_ref()) % passes != pass {
                        continue;
                    }
                    match rows.get_mut(k.as_ref()) {
                        Some(row) => {
                            row.matched = true;
                            match merge.when_matched {
                                WhenMatched::UpdateAll => {
                                    matched.insert(*position);
                                }
                                WhenMatched::DoNothing => {}
                                WhenMatched::Fail => {
                                    return Err(Error::AlreadyExists {
                                        what: format!("key ({}) in the table", display_key(batch, key.len(), j)?),
                                    })
                                }
                            }
                        }
                        None => {
                            let delete = match &delete_unmatched {
                                None => false,
                                Some(None) => true,
                                Some(Some(mask)) => mask.is_valid(j) && mask.value(j),
                            };
                            if delete {
                                matched.insert(*position);
                                plan.report.deleted += 1;
                            }
                        }
                    }
                }
                Ok(())
            };
            for_each_key(location, table.session(), file, key, &extra, &mut on_keys).await?;
        }
        for row in rows.into_values() {
            let keep = match (row.matched, merge.when_matched, merge.when_not_matched) {
                (true, WhenMatched::UpdateAll, _) => {
                    plan.report.updated += 1;
                    true
                }
                (true, _, _) => false,
                (false, _, WhenNotMatched::InsertAll) => {
                    plan.report.inserted += 1;
                    true
                }
                (false, _, WhenNotMatched::DoNothing) => false,
            };
            if !keep {
                plan.dropped[row.file].insert(row.position);
            }
        }
    }
    plan.target.retain(|_, positions| !positions.is_empty());
    Ok(plan)
}

/// The source keys of hash partition `pass` of `passes`; fails on a key given twice.
async fn load_source(
    location: &TableLocation,
    session: &Session,
    source: &[DataFile],
    key: &[Field],
    pass: u64,
    passes: u64,
) -> Result<HashMap<Box<[u8]>, SourceRow>> {
    let mut rows: HashMap<Box<[u8]>, SourceRow> = HashMap::new();
    for (i, file) in source.iter().enumerate() {
        let mut on_keys = |batch: &RecordBatch, keys: &Rows, positions: &[u64]| -> Result<()> {
            for (j, position) in positions.iter().enumerate() {
                let k = keys.row(j);
                if key_hash(k.as_ref()) % passes != pass {
                    continue;
                }
                let row = SourceRow {
                    file: i,
                    position: *position,
                    matched: false,
                };
                if rows.insert(k.as_ref().into(), row).is_some() {
                    return Err(Error::invalid(format!(
                        "key ({}) is given twice in the input",
                        display_key(batch, key.len(), j)?
                    )));
                }
            }
            Ok(())
        };
        for_each_key(location, session, file, key, &[], &mut on_keys).await?;
    }
    Ok(rows)
}

/// Reads the live rows of `file` with the `key` columns then the `extra` ones, calling `f` per
/// batch with the batch, its encoded keys and the rows' positions in the file.
async fn for_each_key(
    location: &TableLocation,
    session: &Session,
    file: &DataFile,
    key: &[Field],
    extra: &[Field],
    f: &mut impl FnMut(&RecordBatch, &Rows, &[u64]) -> Result<()>,
) -> Result<()> {
    let converter = RowConverter::new(
        key.iter()
            .map(|k| SortField::new(k.to_arrow(false).data_type().clone()))
            .collect(),
    )?;
    let task = ScanTask {
        batch_size: 65536,
        ..ScanTask::of_file(file, key.iter().chain(extra).cloned().collect(), true)
    };
    let rows = FileRows::load(location, session, file).await?;
    let mut batches = task.execute(location, session).await?;
    while let Some(batch) = batches.next().await {
        let batch = batch?;
        let width = batch.num_columns() - 1;
        let ids = batch.column(width).as_primitive::<UInt64Type>();
        let positions = ids
            .values()
            .iter()
            .map(|id| {
                rows.position_of(*id)
                    .ok_or_else(|| Error::Internal(format!("row {id} is not a row of {}", file.path)))
            })
            .collect::<Result<Vec<u64>>>()?;
        let keys = converter.convert_columns(&batch.columns()[..key.len()])?;
        let batch = batch.project(&(0..width).collect::<Vec<_>>())?;
        f(&batch, &keys, &positions)?;
    }
    Ok(())
}

/// The key of row `row` (the first `width` columns of `batch`), for messages.
fn display_key(batch: &RecordBatch, width: usize, row: usize) -> Result<String> {
    let options = FormatOptions::default();
    let parts = batch.columns()[..width]
        .iter()
        .map(|c| Ok(ArrayFormatter::try_new(c.as_ref(), &options)?.value(row).to_string()))
        .collect::<Result<Vec<_>>>()?;
    Ok(parts.join(", "))
}

/// The keys a merge inserts, checked against concurrent commits before rebasing over them.
#[derive(Debug)]
pub(crate) struct KeyCheck {
    fields: Vec<Field>,
    /// The merge's new files (with the deletion files of the rows it does not insert).
    files: Vec<DataFile>,
    /// The merge deletes table rows it did not match, so it must see every row of the table.
    sees_every_row: bool,
    /// The session the concurrent commits' files are read in.
    session: Session,
}

impl RowCheck for KeyCheck {
    fn check<'a>(
        &'a self,
        location: &'a TableLocation,
        added: &'a [&'a DataFile],
        theirs: &'a Manifest,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(self.check_keys(location, added, theirs))
    }
}

impl KeyCheck {
    /// Fails with a retryable conflict when `added`, data files that the concurrent commit
    /// `theirs` added, hold a key the merge inserts (or any row, when the merge must see every
    /// row).
    async fn check_keys(&self, location: &TableLocation, added: &[&DataFile], theirs: &Manifest) -> Result<()> {
        let conflict = |reason: String| {
            Err(Error::CommitConflict {
                version: theirs.version,
                reason,
                retryable: true,
            })
        };
        let op = theirs.transaction.operation.name();
        if added.is_empty() {
            return Ok(());
        }
        if self.sees_every_row {
            return conflict(format!(
                "a concurrent {op} added rows, which the merge's delete of unmatched rows did not see"
            ));
        }
        let mut their_keys: HashSet<Box<[u8]>> = HashSet::new();
        for file in added {
            let mut on_keys = |_: &RecordBatch, keys: &Rows, _: &[u64]| -> Result<()> {
                their_keys.extend(keys.iter().map(|k| Box::<[u8]>::from(k.as_ref())));
                Ok(())
            };
            for_each_key(location, &self.session, file, &self.fields, &[], &mut on_keys).await?;
        }
        let mut clash = None;
        for file in &self.files {
            let mut on_keys = |batch: &RecordBatch, keys: &Rows, _: &[u64]| -> Result<()> {
                if clash.is_none() {
                    if let Some(j) = keys.iter().position(|k| their_keys.contains(k.as_ref())) {
                        clash = Some(display_key(batch, self.fields.len(), j)?);
                    }
                }
                Ok(())
            };
            for_each_key(location, &self.session, file, &self.fields, &[], &mut on_keys).await?;
        }
        match clash {
            Some(key) => conflict(format!("a concurrent {op} inserted key ({key})")),
            None => Ok(()),
        }
    }
}
