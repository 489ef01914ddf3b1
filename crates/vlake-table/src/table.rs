//! [`Table`]: a handle on one version of a vlake table.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_schema::{Schema as ArrowSchema, SchemaRef};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use uuid::Uuid;
use vlake_format::layout::{tag_path, TAGS_DIR};
use vlake_format::{Error, Manifest, Result, Schema, Tag};
use vlake_io::{CommitStore, TableLocation};

use crate::blob::BlobWriter;
use crate::merge::{key_field_ids, write_keyed_files, MergeInsert};
use crate::scan::Scanner;
use crate::session::Session;
use crate::txn::{commit_owning_files, Action, PendingCommit, StagedFiles};
use crate::write::{write_with_blobs, WriteOptions};
use crate::BatchStream;

/// Which version of a table to open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionRef {
    /// The newest version.
    Latest,
    /// A version number.
    Version(u64),
    /// The newest version committed at or before this time (milliseconds since the epoch).
    Timestamp(i64),
    /// The version a tag points at.
    Tag(String),
}

/// How a write treats an existing table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Create a new table; fail if one exists.
    Create,
    /// Add rows to an existing table.
    Append,
    /// Replace the rows (and schema) of a table, creating it if missing.
    Overwrite,
}

impl std::str::FromStr for WriteMode {
    type Err = Error;

    /// `create`, `append` or `overwrite`.
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "create" => Ok(Self::Create),
            "append" => Ok(Self::Append),
            "overwrite" => Ok(Self::Overwrite),
            other => Err(Error::invalid(format!(
                "write mode must be 'create', 'append' or 'overwrite', not '{other}'"
            ))),
        }
    }
}

/// Settings of a table handle.
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// How many times a commit is rebased and retried over concurrent writers.
    pub max_commit_retries: u32,
}

impl Default for TableConfig {
    fn default() -> Self {
        Self { max_commit_retries: 50 }
    }
}

/// A summary of one version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VersionInfo {
    /// Version number.
    pub version: u64,
    /// Commit time, milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The operation that produced it.
    pub operation: String,
    /// Live rows.
    pub rows: u64,
    /// Data files.
    pub files: usize,
}

/// One version of a table. Cheap to clone; writes return a handle on the version they created,
/// in the same session.
#[derive(Clone, Debug)]
pub struct Table {
    store: CommitStore,
    manifest: Arc<Manifest>,
    arrow_schema: SchemaRef,
    config: TableConfig,
    session: Session,
}

/// How to open a table: which version, in which session, with which settings. Made by
/// [`Table::builder`].
#[derive(Debug)]
#[must_use = "a builder opens nothing until `open` (or `write`) is called"]
pub struct TableBuilder {
    location: Result<TableLocation>,
    version: VersionRef,
    session: Option<Session>,
    config: TableConfig,
}

impl TableBuilder {
    /// A builder for the table at `location`.
    pub fn new(location: TableLocation) -> Self {
        Self::with_location(Ok(location))
    }

    fn with_location(location: Result<TableLocation>) -> Self {
        Self {
            location,
            version: VersionRef::Latest,
            session: None,
            config: TableConfig::default(),
        }
    }

    /// Opens this version (the newest by default).
    pub fn version(mut self, at: VersionRef) -> Self {
        self.version = at;
        self
    }

    /// Reads through the caches of `session` (a new session with the default budgets
    /// otherwise).
    pub fn session(mut self, session: Session) -> Self {
        self.session = Some(session);
        self
    }

    /// With these settings.
    pub fn config(mut self, config: TableConfig) -> Self {
        self.config = config;
        self
    }

    /// Opens the table.
    pub async fn open(self) -> Result<Table> {
        let store = CommitStore::new(self.location?);
        let version = resolve(&store, &self.version).await?;
        let manifest = Arc::new(store.load_manifest(version).await?);
        Ok(Table::from_manifest(
            store,
            manifest,
            self.config,
            self.session.unwrap_or_default(),
        ))
    }

    /// Writes `data` to the table as one commit, in the given mode, and returns the version
    /// written (see [`Table::write`]).
    pub async fn write(self, data: BatchStream, mode: WriteMode, opts: &WriteOptions) -> Result<Table> {
        let store = CommitStore::new(self.location?);
        let session = self.session.unwrap_or_default();
        let latest = store.latest_version().await?;
        match (mode, latest) {
            (WriteMode::Create, Some(_)) => Err(Error::AlreadyExists {
                what: format!("table {}", store.location().uri()),
            }),
            (WriteMode::Append, None) => Err(Error::not_found(format!(
                "table {} (use mode 'create' or 'overwrite' to create it)",
                store.location().uri()
            ))),
            (WriteMode::Create | WriteMode::Overwrite, None) => {
                let schema = Schema::from_arrow(data.schema(), 1)?;
                let primary_key = key_field_ids(&schema, &opts.primary_key)?;
                let blobs = BlobWriter::new(store.location(), BTreeMap::new());
                let files =
                    write_keyed_files(store.location(), &session, &schema, &primary_key, data, opts, blobs).await?;
                let pending = PendingCommit {
                    id: Uuid::new_v4(),
                    read: None,
                    action: Action::Create {
                        schema,
                        primary_key,
                        files,
                    },
                };
                let manifest = commit_or_clean(&store, pending, self.config.max_commit_retries).await?;
                Ok(Table::from_manifest(store, manifest, self.config, session))
            }
            (WriteMode::Append | WriteMode::Overwrite, Some(v)) => {
                let manifest = Arc::new(store.load_manifest(v).await?);
                let table = Table::from_manifest(store, manifest, self.config, session);
                if mode == WriteMode::Append {
                    table.append(data, opts).await
                } else {
                    table.overwrite(data, opts).await
                }
            }
        }
    }
}

impl Table {
    fn from_manifest(store: CommitStore, manifest: Arc<Manifest>, config: TableConfig, session: Session) -> Self {
        let arrow_schema = Arc::new(manifest.schema.to_arrow_read());
        Self {
            store,
            manifest,
            arrow_schema,
            config,
            session,
        }
    }

    /// How to open the table at `uri`: `Table::builder(uri).version(..).session(..).open()`.
    pub fn builder(uri: &str) -> TableBuilder {
        TableBuilder::with_location(TableLocation::parse(uri))
    }

    /// Opens the latest version of the table at `uri`, in a new session (shorthand for
    /// `Table::builder(uri).open()`).
    pub async fn open(uri: &str) -> Result<Self> {
        Self::builder(uri).open().await
    }

    /// A handle on `manifest`, another version of this table, with this handle's settings.
    pub(crate) fn with_manifest(&self, manifest: Arc<Manifest>) -> Self {
        Self::from_manifest(self.store.clone(), manifest, self.config.clone(), self.session.clone())
    }

    /// The settings of this handle.
    pub fn config(&self) -> &TableConfig {
        &self.config
    }

    /// This handle with other settings.
    pub fn with_config(mut self, config: TableConfig) -> Self {
        self.config = config;
        self
    }

    /// The session this handle reads through.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// This handle reading through `session`.
    pub fn with_session(mut self, session: Session) -> Self {
        self.session = session;
        self
    }

    /// Creates an empty table with `schema`.
    pub async fn create(uri: &str, schema: SchemaRef) -> Result<Self> {
        let empty = BatchStream::from_batches(schema, vec![]);
        Self::write(
            TableLocation::parse(uri)?,
            empty,
            WriteMode::Create,
            &WriteOptions::default(),
        )
        .await
    }

    /// Writes `data` to the table at `location` as one commit, in the given mode, in a new
    /// session (shorthand for `TableBuilder::new(location).write(..)`).
    pub async fn write(
        location: TableLocation,
        data: BatchStream,
        mode: WriteMode,
        opts: &WriteOptions,
    ) -> Result<Self> {
        TableBuilder::new(location).write(data, mode, opts).await
    }

    /// Appends `data` as one commit and returns the new version. On a table with a primary
    /// key this is an insert: a key already in the table (or twice in `data`) fails the append
    /// with [`Error::AlreadyExists`], also when a concurrent writer inserted it first.
    pub async fn append(&self, data: BatchStream, opts: &WriteOptions) -> Result<Self> {
        self.manifest.check_writable()?;
        if !self.manifest.primary_key.is_empty() {
            let key = self.primary_key_names();
            if !opts.primary_key.is_empty() && opts.primary_key != key {
                return Err(Error::invalid(format!(
                    "the table's primary key is ({}), not ({})",
                    key.join(", "),
                    opts.primary_key.join(", ")
                )));
            }
            let (table, _) = self.merge_insert(data, &MergeInsert::insert_only(), opts).await?;
            return Ok(table);
        }
        if !opts.primary_key.is_empty() {
            return Err(Error::invalid(
                "the table has no primary key; a key is declared when the table is created",
            ));
        }
        let files = write_with_blobs(self.location(), &self.manifest.schema, data, opts, self.blob_writer()).await?;
        self.commit_action(Action::Append { files }).await
    }

    /// Names of the primary-key columns (empty when the table has no key).
    pub fn primary_key_names(&self) -> Vec<String> {
        self.manifest
            .primary_key
            .iter()
            .filter_map(|id| self.manifest.schema.field_by_id(*id))
            .map(|f| f.name.clone())
            .collect()
    }

    /// Replaces all rows with `data` (whose schema becomes the table's) as one commit.
    pub async fn overwrite(&self, data: BatchStream, opts: &WriteOptions) -> Result<Self> {
        self.manifest.check_writable()?;
        let schema = self.overwrite_schema(data.schema())?;
        let max_field_id = schema.max_field_id().max(self.manifest.max_field_id);
        // The key stays unless the write names another one; its columns must still be there.
        let key = match opts.primary_key.is_empty() {
            true => self.primary_key_names(),
            false => opts.primary_key.clone(),
        };
        let primary_key = key_field_ids(&schema, &key)?;
        let blobs = self.blob_writer();
        let files = write_keyed_files(
            self.store.location(),
            &self.session,
            &schema,
            &primary_key,
            data,
            opts,
            blobs,
        )
        .await?;
        self.commit_action(Action::Overwrite {
            schema,
            max_field_id,
            primary_key,
            files,
        })
        .await
    }

    /// The schema an overwrite with rows of schema `arrow` gives the table: the current one
    /// (with its field ids) when `arrow` is the same, otherwise `arrow` with new field ids.
    pub(crate) fn overwrite_schema(&self, arrow: &ArrowSchema) -> Result<Schema> {
        let current = &self.manifest.schema;
        let proposed = Schema::from_arrow(arrow, self.manifest.max_field_id + 1)?;
        Ok(match current.to_arrow() == proposed.to_arrow() {
            true => current.clone(),
            false => proposed,
        })
    }

    /// Commits this handle's version again as the newest version.
    pub async fn restore(&self) -> Result<Self> {
        let latest = self.checkout(VersionRef::Latest).await?;
        latest
            .commit_action(Action::Restore {
                from: self.manifest.clone(),
            })
            .await
    }

    pub(crate) async fn commit_action(&self, action: Action) -> Result<Self> {
        let pending = PendingCommit {
            id: Uuid::new_v4(),
            read: Some(self.manifest.clone()),
            action,
        };
        let manifest = commit_or_clean(&self.store, pending, self.config.max_commit_retries).await?;
        Ok(self.with_manifest(manifest))
    }

    /// Another version of the same table.
    pub async fn checkout(&self, at: VersionRef) -> Result<Self> {
        let version = resolve(&self.store, &at).await?;
        if version == self.manifest.version {
            return Ok(self.clone());
        }
        let manifest = Arc::new(self.store.load_manifest(version).await?);
        Ok(self.with_manifest(manifest))
    }

    /// The version number of this handle.
    pub fn version(&self) -> u64 {
        self.manifest.version
    }

    /// The manifest of this version.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The Arrow schema of this version, as scans return it (BLOB columns as descriptors).
    pub fn schema(&self) -> &SchemaRef {
        &self.arrow_schema
    }

    /// The schema with field ids.
    pub fn table_schema(&self) -> &Schema {
        &self.manifest.schema
    }

    /// Live rows in this version.
    pub fn num_rows(&self) -> u64 {
        self.manifest.num_rows()
    }

    /// Where the table lives.
    pub fn location(&self) -> &TableLocation {
        self.store.location()
    }

    /// The URI the table was opened with.
    pub fn uri(&self) -> &str {
        self.store.location().uri()
    }

    pub(crate) fn commit_store(&self) -> &CommitStore {
        &self.store
    }

    /// Starts a scan of this version.
    pub fn scan(&self) -> Scanner {
        Scanner::new(self.clone())
    }

    /// Every version that still exists, oldest first.
    ///
    /// Reads one summary per listed version (not the full manifests).
    pub async fn versions(&self) -> Result<Vec<VersionInfo>> {
        self.newest_versions(usize::MAX).await
    }

    /// The newest `limit` versions that still exist, oldest first.
    pub async fn newest_versions(&self, limit: usize) -> Result<Vec<VersionInfo>> {
        let mut versions = self.store.list_versions().await?;
        versions.drain(..versions.len().saturating_sub(limit));
        futures::stream::iter(versions)
            .map(|v| async move {
                let m = self.store.load_summary(v).await?;
                Ok(VersionInfo {
                    version: m.version,
                    timestamp_ms: m.timestamp_ms,
                    operation: m.operation.name().to_string(),
                    rows: m.rows,
                    files: m.files,
                })
            })
            .buffered(16)
            .try_collect()
            .await
    }

    /// Names `version` with tag `name`.
    pub async fn create_tag(&self, name: &str, version: u64) -> Result<Tag> {
        Tag::validate_name(name)?;
        if !self.store.version_exists(version).await? {
            return Err(Error::not_found(format!("version {version} of table {}", self.uri())));
        }
        let tag = Tag {
            name: name.to_string(),
            version,
            created_ms: chrono::Utc::now().timestamp_millis(),
        };
        let bytes = serde_json::to_vec(&tag).map_err(|e| Error::Internal(e.to_string()))?;
        match self.location().put_if_absent(&tag_path(name), bytes).await {
            Err(Error::AlreadyExists { .. }) => Err(Error::AlreadyExists {
                what: format!("tag '{name}'"),
            }),
            other => other.map(|()| tag),
        }
    }

    /// Deletes tag `name`.
    pub async fn delete_tag(&self, name: &str) -> Result<()> {
        Tag::validate_name(name)?;
        load_tag(&self.store, name).await?;
        self.location().delete(&tag_path(name)).await
    }

    /// All tags, by name.
    pub async fn tags(&self) -> Result<Vec<Tag>> {
        list_tags(&self.store).await
    }

    /// A blob writer for a write on top of this version: input descriptors may point into
    /// this version's blob files.
    pub(crate) fn blob_writer(&self) -> BlobWriter {
        let known = self
            .manifest
            .blob_files()
            .into_iter()
            .map(|(p, s)| (p.to_string(), s))
            .collect();
        BlobWriter::new(self.location(), known)
    }

    /// The Arrow schema a scan of `columns` produces.
    pub fn project_schema(&self, columns: &[String]) -> Result<ArrowSchema> {
        Ok(self.manifest.schema.project(columns)?.to_arrow_read())
    }
}

async fn commit_or_clean(store: &CommitStore, pending: PendingCommit, retries: u32) -> Result<Arc<Manifest>> {
    commit_owning_files(store, &pending, StagedFiles::new(store.clone()), retries).await
}

/// Every tag of the table at `store`, sorted by name.
pub(crate) async fn list_tags(store: &CommitStore) -> Result<Vec<Tag>> {
    let objects = store.location().list(TAGS_DIR).await?;
    let mut tags = Vec::with_capacity(objects.len());
    for o in objects {
        if let Some(name) = o.location.filename().and_then(|f| f.strip_suffix(".json")) {
            tags.push(load_tag(store, name).await?);
        }
    }
    tags.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tags)
}

async fn load_tag(store: &CommitStore, name: &str) -> Result<Tag> {
    let path = tag_path(name);
    let bytes = match store.location().get(&path).await {
        Err(Error::NotFound { .. }) => return Err(Error::not_found(format!("tag '{name}'"))),
        other => other?,
    };
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(path, e.to_string()))
}

/// The version number `at` stands for.
async fn resolve(store: &CommitStore, at: &VersionRef) -> Result<u64> {
    let missing = || Error::not_found(format!("table {} (no versions)", store.location().uri()));
    match at {
        VersionRef::Latest => store.latest_version().await?.ok_or_else(missing),
        VersionRef::Version(v) => {
            if store.version_exists(*v).await? {
                Ok(*v)
            } else {
                Err(Error::not_found(format!(
                    "version {v} of table {}",
                    store.location().uri()
                )))
            }
        }
        VersionRef::Tag(name) => Ok(load_tag(store, name).await?.version),
        VersionRef::Timestamp(ms) => {
            // Timestamps never decrease along versions: binary search the listed versions.
            let versions = store.list_versions().await?;
            let (mut lo, mut hi) = (0usize, versions.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if store.load_manifest(versions[mid]).await?.timestamp_ms <= *ms {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            match lo.checked_sub(1) {
                Some(i) => Ok(versions[i]),
                None if versions.is_empty() => Err(missing()),
                None => Err(Error::not_found(format!(
                    "a version of {} at or before {} (the oldest is version {})",
                    store.location().uri(),
                    chrono::DateTime::from_timestamp_millis(*ms).map_or_else(|| ms.to_string(), |t| t.to_rfc3339()),
                    versions[0]
                ))),
            }
        }
    }
}
