//! Removing old versions and unreferenced files (format-spec/commit.md#cleanup).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use serde::Serialize;
use vlake_format::layout::{
    is_vlake_file, manifest_path, BLOBS_DIR, DATA_DIR, DELETIONS_DIR, INDEXES_DIR, ROW_IDS_DIR,
};
use vlake_format::{Error, Result};
use vlake_io::{CommitStore, TableLocation};

use crate::table::list_tags;
use crate::Table;

/// Cleanup never removes an unreferenced file or a version younger than this, whatever its
/// retention: a writer may be about to commit the file, or be about to commit the version
/// after one it listed; a removed version's number would be free for it to take, below the
/// latest (format-spec/commit.md#cleanup). Writes that take longer than this can lose their
/// files to a concurrent cleanup; they then fail to commit.
pub const MIN_FILE_AGE: Duration = Duration::from_secs(3600);

/// The directories whose files cleanup may remove.
const FILE_DIRS: [&str; 5] = [DATA_DIR, DELETIONS_DIR, ROW_IDS_DIR, INDEXES_DIR, BLOBS_DIR];

/// What a cleanup removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CleanupOptions {
    older_than: Duration,
    min_file_age: Duration,
}

impl CleanupOptions {
    /// Removes versions older than both `older_than` and [`MIN_FILE_AGE`] (never the latest or
    /// a tagged one), and files that no remaining version references once they are older than
    /// both.
    pub fn new(older_than: Duration) -> Self {
        Self {
            older_than,
            min_file_age: MIN_FILE_AGE,
        }
    }

    /// Lowers the minimum age of the unreferenced files and the versions cleanup removes below
    /// [`MIN_FILE_AGE`].
    ///
    /// Unsafe while anyone writes to the table: cleanup may remove the files of a write in
    /// flight, which then fails to commit, or a version whose number a committing writer then
    /// takes below the latest, losing that commit. Meant for tests and for tables that certainly
    /// have no writer running.
    pub fn dangerously_remove_files_younger_than_min_age(mut self, min_file_age: Duration) -> Self {
        self.min_file_age = min_file_age;
        self
    }

    /// Versions older than this are removed.
    pub fn older_than(&self) -> Duration {
        self.older_than
    }

    /// Unreferenced files and versions younger than this are kept.
    pub fn min_file_age(&self) -> Duration {
        self.min_file_age
    }
}

/// What a cleanup removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Manifests removed.
    pub versions_removed: usize,
    /// Data, deletion, row-id, index and blob files removed.
    pub files_removed: usize,
    /// Bytes of those files.
    pub bytes_removed: u64,
    /// Unreferenced files older than the retention but kept because they are younger than the
    /// minimum file age ([`MIN_FILE_AGE`]).
    pub files_kept_recent: usize,
    /// Crashed writers' partial uploads removed (local tables).
    pub staging_files_removed: usize,
}

impl Table {
    /// Removes old versions and unreferenced files of this table; see [`cleanup`].
    pub async fn cleanup(&self, options: &CleanupOptions) -> Result<CleanupReport> {
        cleanup(self.location(), options).await
    }
}

/// Removes versions older than the retention (never the latest or a tagged one) and the files
/// that vlake wrote and no remaining version references, once they are older than both the
/// retention and the minimum file age. Works on a root with no versions (files a failed
/// create left). Only objects named as vlake names them, in vlake's own directories, are
/// removed; anything else under the root is left alone.
pub async fn cleanup(location: &TableLocation, options: &CleanupOptions) -> Result<CleanupReport> {
    let store = CommitStore::new(location.clone());
    let now = SystemTime::now();
    // A version is kept while it is younger than the retention or the minimum age: see
    // MIN_FILE_AGE for why the latter.
    let version_cutoff_ms = millis_since_epoch(now.checked_sub(options.older_than.max(options.min_file_age)));
    let file_cutoff = now
        .checked_sub(options.older_than.max(options.min_file_age))
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let retention_cutoff = now.checked_sub(options.older_than).unwrap_or(SystemTime::UNIX_EPOCH);

    let mut report = CleanupReport::default();
    let mut referenced = BTreeSet::new();
    let versions = store.list_versions().await?;
    let latest = versions.last().copied();
    if let Some(latest) = latest {
        // Cleanup deletes files: a newer writer may reference files in ways this one cannot see.
        store.load_manifest(latest).await?.check_writable()?;
        let tagged: BTreeSet<u64> = list_tags(&store).await?.iter().map(|t| t.version).collect();
        let first_recent = first_not_older(&store, &versions, version_cutoff_ms).await?;
        let mut kept = Vec::new();
        let mut expired = Vec::new();
        for (i, v) in versions.iter().enumerate() {
            if i >= first_recent || *v == latest || tagged.contains(v) {
                kept.push(*v);
            } else {
                expired.push(*v);
            }
        }
        add_references(&store, kept, &mut referenced).await?;
        // The hint must not point at a removed version.
        store.write_hint(latest).await;
        for version in expired {
            location.delete(&manifest_path(version)).await?;
            report.versions_removed += 1;
        }
    }

    let mut candidates: Vec<(String, ObjectMeta)> = Vec::new();
    let mut found_any = latest.is_some();
    for dir in FILE_DIRS {
        for object in location.list(dir).await? {
            found_any = true;
            let Some(rel) = location.relative(&object.location) else {
                continue;
            };
            if !is_vlake_file(&rel) || referenced.contains(&rel) || is_under_referenced_dir(&rel, &referenced) {
                continue;
            }
            let modified = SystemTime::from(object.last_modified);
            if modified < file_cutoff {
                candidates.push((rel, object));
            } else if modified < retention_cutoff {
                report.files_kept_recent += 1;
            }
        }
    }
    if !found_any {
        return Err(Error::not_found(format!(
            "a vlake table at {} (no versions and no vlake files)",
            location.uri()
        )));
    }
    // A version committed while cleanup ran (a restore can reference old files) keeps what it
    // needs.
    let newer = store.list_versions_after(latest).await?;
    add_references(&store, newer, &mut referenced).await?;
    for (rel, object) in candidates {
        if referenced.contains(&rel) || is_under_referenced_dir(&rel, &referenced) {
            continue;
        }
        location.delete(&rel).await?;
        report.files_removed += 1;
        report.bytes_removed += object.size;
    }
    report.staging_files_removed = location.remove_local_staging_files(file_cutoff)?;
    Ok(report)
}

/// Milliseconds since the epoch of `time`; 0 when it is before the epoch or unrepresentable.
fn millis_since_epoch(time: Option<SystemTime>) -> i64 {
    time.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

/// The index in `versions` of the first version committed at or after `cutoff_ms`
/// (`versions.len()` when none is). Timestamps never decrease along versions
/// (format-spec/commit.md#timestamps), so a binary search loads O(log n) manifests.
async fn first_not_older(store: &CommitStore, versions: &[u64], cutoff_ms: i64) -> Result<usize> {
    let (mut lo, mut hi) = (0usize, versions.len());
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if store.load_manifest(versions[mid]).await?.timestamp_ms < cutoff_ms {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Adds every file the manifests of `versions` reference to `referenced`.
async fn add_references(store: &CommitStore, versions: Vec<u64>, referenced: &mut BTreeSet<String>) -> Result<()> {
    let store = store.clone();
    let mut manifests = futures::stream::iter(versions)
        .map(move |v| {
            let store = store.clone();
            async move { store.load_manifest(v).await }
        })
        .buffer_unordered(16);
    while let Some(manifest) = manifests.try_next().await? {
        referenced.extend(manifest.referenced_files().map(str::to_string));
    }
    Ok(())
}

/// Index entries may name a directory; everything under it is referenced.
fn is_under_referenced_dir(rel: &str, referenced: &BTreeSet<String>) -> bool {
    rel.match_indices('/').any(|(i, _)| referenced.contains(&rel[..i]))
}
