//! The public staged transaction: data files written by any number of writers, in this process
//! or on other machines ([`Table::stage`]), described as [`StagedWrite`]s, and committed by one
//! process in one version ([`Transaction::commit`]), rebased over concurrent commits by the
//! commit core's rules (format-spec/commit.md#staged-writes).
//!
//! ```no_run
//! # async fn demo(part1: vlake_table::BatchStream, part2: vlake_table::BatchStream) -> vlake_format::Result<()> {
//! use vlake_table::{StagedMode, StagedWrite, Table, WriteOptions};
//! let table = Table::open("/data/t").await?;
//! // On the workers: write files, send their description (JSON) to the committer.
//! let a = table.stage(part1, StagedMode::Append, &WriteOptions::default()).await?.to_json()?;
//! let b = table.stage(part2, StagedMode::Append, &WriteOptions::default()).await?.to_json()?;
//! // On the committer: one version with every row of both.
//! let mut txn = table.new_transaction();
//! txn.add(StagedWrite::from_json(&a)?)?;
//! txn.add(StagedWrite::from_json(&b)?)?;
//! let table = txn.commit().await?;
//! # Ok(()) }
//! ```

use std::collections::HashSet;

use uuid::Uuid;
use vlake_format::{Error, Result, Schema};
use vlake_io::TableLocation;

use crate::txn::{commit_owning_files, Action, PendingCommit, StagedFile, StagedFiles, StagedMode, StagedWrite};
use crate::write::{write_with_blobs, WriteOptions};
use crate::{BatchStream, Table};

impl Table {
    /// Writes `data` as data files (and blob files) of this table without committing them, and
    /// returns their description, to be committed by a [`Transaction`] in this process or
    /// another. Files that are never committed are removed by [`Transaction::abort`], or by
    /// cleanup once they are older than [`crate::MIN_FILE_AGE`].
    ///
    /// With [`StagedMode::Append`] the rows are conformed to the table's schema (missing
    /// nullable columns filled with nulls); with [`StagedMode::Overwrite`] their schema becomes
    /// the table's. Tables with a primary key are not supported yet: their writes must be
    /// matched against the table's keys, which a staged append does not do.
    pub async fn stage(&self, data: BatchStream, mode: StagedMode, opts: &WriteOptions) -> Result<StagedWrite> {
        self.manifest().check_writable()?;
        if !self.manifest().primary_key.is_empty() || !opts.primary_key.is_empty() {
            return Err(Error::unsupported(
                "staged writes to a table with a primary key (use an upsert or an append)",
            ));
        }
        let schema = match mode {
            StagedMode::Append => self.table_schema().clone(),
            StagedMode::Overwrite => self.overwrite_schema(data.schema())?,
        };
        let files = write_with_blobs(self.location(), &schema, data, opts, self.blob_writer()).await?;
        Ok(StagedWrite::new(
            self.location(),
            self.version(),
            mode,
            schema,
            vec![],
            files,
        ))
    }

    /// A transaction on this version: staged writes added to it commit together in one new
    /// version.
    pub fn new_transaction(&self) -> Transaction {
        Transaction {
            table: self.clone(),
            mode: None,
            schema: None,
            files: Vec::new(),
            staged_paths: HashSet::new(),
            committed_paths: None,
            staged: StagedFiles::new(self.commit_store().clone()),
        }
    }
}

/// Staged writes to commit in one version (see the [module docs](self)). The transaction owns
/// the files of the writes added to it: when it is dropped or aborted without committing, they
/// are removed.
#[derive(Debug)]
pub struct Transaction {
    table: Table,
    mode: Option<StagedMode>,
    /// The schema of the writes (an overwrite's new schema).
    schema: Option<Schema>,
    files: Vec<StagedFile>,
    /// Paths of `files`, and of the read version's data files (read at the first `add`).
    staged_paths: HashSet<String>,
    committed_paths: Option<HashSet<String>>,
    staged: StagedFiles,
}

impl Transaction {
    /// Adds the files of `write`. Fails, leaving the transaction as it was, when the write was
    /// staged for another table, in another mode than the writes added before, or for a
    /// schema the transaction cannot commit it with.
    pub fn add(&mut self, write: StagedWrite) -> Result<&mut Self> {
        let table = self.table.uri();
        if TableLocation::parse(&write.table)?.uri() != table {
            return Err(Error::invalid(format!(
                "the staged write is for table {}, not {table}",
                write.table
            )));
        }
        if let Some(mode) = self.mode.filter(|m| *m != write.mode) {
            return Err(Error::invalid(format!(
                "a staged {} cannot join a transaction of {mode} writes",
                write.mode
            )));
        }
        if !write.primary_key.is_empty() || !self.table.manifest().primary_key.is_empty() {
            return Err(Error::unsupported("staged writes to a table with a primary key"));
        }
        let expected = match write.mode {
            StagedMode::Append => Some(self.table.table_schema()),
            StagedMode::Overwrite => self.schema.as_ref(),
        };
        if expected.is_some_and(|s| *s != write.schema) {
            return Err(Error::invalid(format!(
                "the staged write was written for another schema than {} (staged at version {}); \
                 stage it again",
                match write.mode {
                    StagedMode::Append => format!("the table's at version {}", self.table.version()),
                    StagedMode::Overwrite => "the other writes of this overwrite".to_string(),
                },
                write.read_version
            )));
        }
        write.files.iter().try_for_each(StagedFile::check)?;
        let committed = self.committed_paths.get_or_insert_with(|| {
            let files = &self.table.manifest().data_files;
            files.iter().map(|f| f.path.clone()).collect()
        });
        if let Some(file) = write.files.iter().find(|f| committed.contains(&f.path)) {
            return Err(Error::invalid(format!(
                "data file {} is already part of version {}; a staged write is committed once",
                file.path,
                self.table.version()
            )));
        }
        let mut seen = HashSet::with_capacity(write.files.len());
        if let Some(dup) = write
            .files
            .iter()
            .find(|f| self.staged_paths.contains(&f.path) || !seen.insert(&f.path))
        {
            return Err(Error::invalid(format!("data file {} is staged twice", dup.path)));
        }
        self.staged_paths.extend(write.files.iter().map(|f| f.path.clone()));
        self.staged.adopt(write.paths());
        self.mode = Some(write.mode);
        self.schema = Some(write.schema);
        self.files.extend(write.files);
        Ok(self)
    }

    /// Rows in the staged files.
    pub fn num_rows(&self) -> u64 {
        self.files.iter().map(|f| f.num_rows).sum()
    }

    /// Commits every added write in one new version and returns it. An append rebases over
    /// any concurrent commit that kept the schema; an overwrite fails with a retryable
    /// [`Error::CommitConflict`] when a concurrent commit replaced the contents or the schema.
    /// When it fails for certain the staged files are removed; when the outcome is unknown (a
    /// storage error during the put) they are left for cleanup. A transaction without writes
    /// commits nothing and returns the table as it was read.
    pub async fn commit(self) -> Result<Table> {
        let Self {
            table,
            mode,
            schema,
            files,
            staged,
            ..
        } = self;
        let action = match (mode, schema) {
            (None, _) => return Ok(table),
            (Some(StagedMode::Append), _) => Action::Append { files },
            (Some(StagedMode::Overwrite), None) => {
                return Err(Error::Internal("an overwrite transaction without a schema".into()))
            }
            (Some(StagedMode::Overwrite), Some(schema)) => Action::Overwrite {
                max_field_id: schema.max_field_id().max(table.manifest().max_field_id),
                schema,
                primary_key: vec![],
                files,
            },
        };
        let pending = PendingCommit {
            id: Uuid::new_v4(),
            read: Some(table.manifest().clone()),
            action,
        };
        let retries = table.config().max_commit_retries;
        let manifest = commit_owning_files(table.commit_store(), &pending, staged, retries).await?;
        Ok(table.with_manifest(manifest))
    }

    /// Removes the staged files of every added write without committing them (never a file
    /// that the latest version references).
    pub async fn abort(mut self) {
        self.staged.remove_unreferenced().await;
    }
}
