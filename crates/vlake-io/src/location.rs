//! Table URIs: bare paths and `file://` (local disk, the default), `memory://` and `s3://`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use vlake_format::layout::is_vlake_staging_file;
use vlake_format::{Error, Result};

/// Where a table lives: an object store and the table's root inside it.
#[derive(Clone, Debug)]
pub struct TableLocation {
    uri: String,
    store: Arc<dyn ObjectStore>,
    root: Path,
    local_root: Option<PathBuf>,
    /// Whether the store was wrapped, so that all I/O must go through it.
    wrapped: bool,
}

/// In-process `memory://` stores, by name, so that two opens of one URI see the same table.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    stores
        .entry(name.to_string())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

impl TableLocation {
    /// Resolves a table URI with default options (S3 settings are read from `AWS_*` variables).
    pub fn parse(uri: &str) -> Result<Self> {
        Self::parse_with_options(uri, &HashMap::new())
    }

    /// Resolves a table URI. `options` configure remote stores (for `s3://`: `aws_endpoint`,
    /// `aws_region`, `aws_access_key_id`, `aws_secret_access_key`, `aws_allow_http`, ..., and
    /// the timeouts `connect_timeout`, `timeout`, `retry_timeout`, `max_retries` of
    /// [`crate::S3Timeouts`]).
    pub fn parse_with_options(uri: &str, options: &HashMap<String, String>) -> Result<Self> {
        let uri = uri.trim();
        if uri.is_empty() {
            return Err(Error::invalid("table URI is empty"));
        }
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Self::local(PathBuf::from(uri), uri);
        };
        match scheme {
            "file" => Self::local(PathBuf::from(rest), uri),
            "memory" => {
                let (name, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Ok(Self {
                    uri: uri.to_string(),
                    store: memory_store(name),
                    root: Path::from(prefix),
                    local_root: None,
                    wrapped: false,
                })
            }
            "s3" | "s3a" => {
                let url = url::Url::parse(&uri.replacen("s3a://", "s3://", 1))
                    .map_err(|e| Error::invalid(format!("bad S3 URI '{uri}': {e}")))?;
                let bucket = url
                    .host_str()
                    .ok_or_else(|| Error::invalid(format!("S3 URI '{uri}' has no bucket")))?;
                Ok(Self {
                    uri: uri.to_string(),
                    store: crate::s3::open(uri, bucket, options)?,
                    root: Path::from(url.path()),
                    local_root: None,
                    wrapped: false,
                })
            }
            other => Err(Error::unsupported(format!(
                "URI scheme '{other}://' in '{uri}' (supported: a path, file://, memory://, s3://)"
            ))),
        }
    }

    fn local(path: PathBuf, uri: &str) -> Result<Self> {
        let abs = std::path::absolute(&path).map_err(|e| Error::io(uri, e))?;
        // Resolve `.` and `..` lexically: object store paths may not contain them.
        let abs = abs.components().fold(PathBuf::new(), |mut p, c| {
            match c {
                std::path::Component::ParentDir => {
                    p.pop();
                }
                std::path::Component::CurDir => {}
                other => p.push(other),
            }
            p
        });
        let root =
            Path::from_absolute_path(&abs).map_err(|e| Error::invalid(format!("bad local path '{uri}': {e}")))?;
        Ok(Self {
            uri: uri.to_string(),
            store: Arc::new(LocalFileSystem::new()),
            root,
            local_root: Some(abs),
            wrapped: false,
        })
    }

    /// Wraps the store, e.g. with an [`crate::InstrumentedStore`].
    pub fn with_store(mut self, wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Self {
        self.store = wrap(self.store);
        self.wrapped = true;
        self
    }

    /// The URI this location was parsed from.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The object store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The directory on local disk, for local tables.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    /// The directory on local disk when data files may be written there directly, bypassing
    /// the object store (not when the store was wrapped with [`Self::with_store`]).
    pub fn direct_write_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref().filter(|_| !self.wrapped)
    }

    /// The store path of `rel`, a `/`-separated path relative to the table root.
    pub fn path(&self, rel: &str) -> Path {
        rel.split('/')
            .filter(|s| !s.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }

    /// `path` relative to the table root, if it is inside it.
    pub fn relative(&self, path: &Path) -> Option<String> {
        path.prefix_match(&self.root)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect::<Vec<_>>().join("/"))
    }

    /// Reads a whole object.
    pub async fn get(&self, rel: &str) -> Result<Bytes> {
        let path = self.path(rel);
        let result = self.store.get(&path).await.map_err(|e| map_err(e, &path))?;
        result.bytes().await.map_err(|e| map_err(e, &path))
    }

    /// Reads the byte ranges `ranges` of an object (coalesced into fewer requests where the
    /// store allows).
    pub async fn get_ranges(&self, rel: &str, ranges: &[std::ops::Range<u64>]) -> Result<Vec<Bytes>> {
        let path = self.path(rel);
        self.store
            .get_ranges(&path, ranges)
            .await
            .map_err(|e| map_err(e, &path))
    }

    /// Metadata of an object.
    pub async fn head(&self, rel: &str) -> Result<ObjectMeta> {
        let path = self.path(rel);
        self.store.head(&path).await.map_err(|e| map_err(e, &path))
    }

    /// Whether an object exists.
    pub async fn exists(&self, rel: &str) -> Result<bool> {
        match self.head(rel).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Writes an object, replacing any existing one (atomically: readers see old or new bytes).
    pub async fn put(&self, rel: &str, bytes: impl Into<PutPayload>) -> Result<()> {
        let path = self.path(rel);
        self.store
            .put(&path, bytes.into())
            .await
            .map_err(|e| map_err(e, &path))?;
        Ok(())
    }

    /// Writes an object only if none exists; [`Error::AlreadyExists`] otherwise.
    pub async fn put_if_absent(&self, rel: &str, bytes: impl Into<PutPayload>) -> Result<()> {
        let path = self.path(rel);
        let opts = PutOptions::from(PutMode::Create);
        self.store
            .put_opts(&path, bytes.into(), opts)
            .await
            .map_err(|e| map_err(e, &path))?;
        Ok(())
    }

    /// Deletes an object; deleting a missing object is not an error.
    pub async fn delete(&self, rel: &str) -> Result<()> {
        let path = self.path(rel);
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err(e, &path)),
        }
    }

    /// Lists every object under the directory `rel` (recursively).
    pub async fn list(&self, rel: &str) -> Result<Vec<ObjectMeta>> {
        let path = self.path(rel);
        self.store
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(|e| map_err(e, &path))
    }

    /// Lists the objects under `rel` whose path sorts after `rel/offset`.
    pub async fn list_after(&self, rel: &str, offset: &str) -> Result<Vec<ObjectMeta>> {
        let path = self.path(rel);
        let offset = self.path(&format!("{rel}/{offset}"));
        self.store
            .list_with_offset(Some(&path), &offset)
            .try_collect()
            .await
            .map_err(|e| map_err(e, &path))
    }

    /// Removes staging files left by writers that crashed mid-upload on local disk (`name#n`,
    /// invisible to listings) when they are older than `older_than`: only those of objects vlake
    /// writes (`vlake_format::layout::is_vlake_staging_file`); a user's file with `#` in its
    /// name is left alone. Returns how many were removed.
    pub fn remove_local_staging_files(&self, older_than: std::time::SystemTime) -> Result<usize> {
        let Some(root) = &self.local_root else { return Ok(0) };
        let mut removed = 0;
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(dir.display().to_string(), e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| Error::io(dir.display().to_string(), e))?;
                // Staging files come and go as writers rename them into place: one that vanished
                // since the directory was read is no longer there to remove.
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(Error::io(entry.path().display().to_string(), e)),
                };
                if meta.is_dir() {
                    stack.push(entry.path());
                } else if meta.modified().is_ok_and(|m| m < older_than)
                    && entry
                        .path()
                        .strip_prefix(root)
                        .ok()
                        .and_then(|rel| rel.to_str())
                        .is_some_and(|rel| is_vlake_staging_file(&rel.replace(std::path::MAIN_SEPARATOR, "/")))
                {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(Error::io(entry.path().display().to_string(), e)),
                    }
                }
            }
        }
        Ok(removed)
    }
}

/// Maps an object store error to a vlake error kind, naming the object (by the store's own
/// name for it where it gives one: the full path of a local file, with its leading `/`).
pub(crate) fn map_err(e: object_store::Error, path: &Path) -> Error {
    match e {
        object_store::Error::NotFound { path: name, .. } => Error::not_found(format!("object {name}")),
        object_store::Error::AlreadyExists { path: name, .. } => Error::AlreadyExists {
            what: format!("object {name}"),
        },
        other => Error::io(path.to_string(), other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_uris_share_a_store_and_put_if_absent_refuses_overwrite() -> Result<()> {
        let a = TableLocation::parse("memory://shared/t")?;
        let b = TableLocation::parse("memory://shared/t")?;
        a.put_if_absent("x/1.json", Bytes::from_static(b"one")).await?;
        assert_eq!(b.get("x/1.json").await?, Bytes::from_static(b"one"));
        assert!(matches!(
            b.put_if_absent("x/1.json", Bytes::from_static(b"two")).await,
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(a.get("x/1.json").await?, Bytes::from_static(b"one"));
        assert!(matches!(a.get("missing").await, Err(Error::NotFound { .. })));
        Ok(())
    }

    #[tokio::test]
    async fn local_paths_and_file_uris_agree() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let bare = TableLocation::parse(&dir.path().join("x/../t/.").display().to_string())?;
        let file = TableLocation::parse(&format!("file://{}", dir.path().join("t").display()))?;
        bare.put("a/b.txt", Bytes::from_static(b"hi")).await?;
        assert_eq!(file.get("a/b.txt").await?, Bytes::from_static(b"hi"));
        let listed = file.list("a").await?;
        assert_eq!(listed.len(), 1);
        assert_eq!(file.relative(&listed[0].location).as_deref(), Some("a/b.txt"));
        assert!(TableLocation::parse("gopher://x").is_err());
        Ok(())
    }
}
