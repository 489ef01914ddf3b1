//! The commit store (format-spec/commit.md): manifests created with put-if-absent, and a
//! latest-version lookup that reads a hint and lists only the versions after it.

use vlake_format::layout::{manifest_path, parse_manifest_name, LATEST_HINT, VERSIONS_DIR};
use vlake_format::{Error, LatestHint, Manifest, Result, VersionSummary};

use crate::TableLocation;

/// Result of trying to create a manifest.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The manifest was created: this writer owns the version.
    Committed,
    /// Another writer created that version first.
    VersionTaken,
}

/// Manifest reads and writes of one table.
#[derive(Clone, Debug)]
pub struct CommitStore {
    location: TableLocation,
}

impl CommitStore {
    /// The commit store of the table at `location`.
    pub fn new(location: TableLocation) -> Self {
        Self { location }
    }

    /// The table's location.
    pub fn location(&self) -> &TableLocation {
        &self.location
    }

    /// Atomically creates the manifest of `manifest.version` unless it exists.
    pub async fn try_commit(&self, manifest: &Manifest) -> Result<CommitOutcome> {
        let bytes = manifest.encode()?;
        match self
            .location
            .put_if_absent(&manifest_path(manifest.version), bytes)
            .await
        {
            Ok(()) => Ok(CommitOutcome::Committed),
            Err(Error::AlreadyExists { .. }) => Ok(CommitOutcome::VersionTaken),
            Err(e) => Err(e),
        }
    }

    /// Reads and validates the manifest of `version`.
    pub async fn load_manifest(&self, version: u64) -> Result<Manifest> {
        let rel = manifest_path(version);
        let bytes = self.get_manifest_bytes(version, &rel).await?;
        Manifest::decode(&bytes, &format!("{}/{rel}", self.location.uri()), version)
    }

    /// Reads the summary of the manifest of `version` (what a version listing shows).
    pub async fn load_summary(&self, version: u64) -> Result<VersionSummary> {
        let rel = manifest_path(version);
        let bytes = self.get_manifest_bytes(version, &rel).await?;
        VersionSummary::decode(&bytes, &format!("{}/{rel}", self.location.uri()), version)
    }

    async fn get_manifest_bytes(&self, version: u64, rel: &str) -> Result<bytes::Bytes> {
        match self.location.get(rel).await {
            Err(Error::NotFound { .. }) => Err(Error::not_found(format!(
                "version {version} of table {}",
                self.location.uri()
            ))),
            other => other,
        }
    }

    /// Whether the manifest of `version` exists.
    pub async fn version_exists(&self, version: u64) -> Result<bool> {
        self.location.exists(&manifest_path(version)).await
    }

    /// The latest version, or `None` when the table has none.
    ///
    /// Reads `_latest.json` and lists the versions after it (one listing request); lists all of
    /// `_versions/` only when the hint is missing, unreadable or points at a removed version with
    /// nothing after it. Listing rather than probing `hint + 1` finds the latest version across
    /// gaps that cleanup leaves (a stale hint below a removed version), so that no writer commits
    /// below it (format-spec/commit.md#finding-the-latest-version).
    pub async fn latest_version(&self) -> Result<Option<u64>> {
        if let Some(hint) = self.read_hint().await? {
            if let Some(latest) = self.list_versions_after(Some(hint)).await?.last() {
                return Ok(Some(*latest));
            }
            if self.version_exists(hint).await? {
                return Ok(Some(hint));
            }
        }
        Ok(self.list_versions().await?.last().copied())
    }

    /// The version the hint names; `None` when it is missing, unparseable or cannot be read
    /// (the hint is best effort: the lookup then lists every version).
    async fn read_hint(&self) -> Result<Option<u64>> {
        Ok(self
            .location
            .get(LATEST_HINT)
            .await
            .ok()
            .and_then(|bytes| serde_json::from_slice::<LatestHint>(&bytes).ok())
            .map(|h| h.version))
    }

    /// Records `version` as the latest known version. Best effort: the hint is never trusted
    /// without probing, so a failure here does not fail the commit.
    pub async fn write_hint(&self, version: u64) {
        if let Ok(bytes) = serde_json::to_vec(&LatestHint { version }) {
            let _ = self.location.put(LATEST_HINT, bytes).await;
        }
    }

    /// All versions whose manifests exist, ascending.
    pub async fn list_versions(&self) -> Result<Vec<u64>> {
        self.list_versions_after(None).await
    }

    /// Versions above `after` (all when `None`) whose manifests exist, ascending.
    pub async fn list_versions_after(&self, after: Option<u64>) -> Result<Vec<u64>> {
        let objects = match after {
            Some(v) => {
                let name = manifest_path(v);
                let name = &name[VERSIONS_DIR.len() + 1..];
                self.location.list_after(VERSIONS_DIR, name).await?
            }
            None => self.location.list(VERSIONS_DIR).await?,
        };
        let mut versions: Vec<u64> = objects
            .iter()
            .filter_map(|o| o.location.filename().and_then(parse_manifest_name))
            .filter(|v| after.is_none_or(|a| *v > a))
            .collect();
        versions.sort_unstable();
        Ok(versions)
    }
}
