//! Removing old versions and unreferenced files (format-spec/commit.md#cleanup).

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use vlake_format::layout::{manifest_path, BLOBS_DIR, DATA_DIR, DELETIONS_DIR, INDEXES_DIR, ROW_IDS_DIR};
use vlake_format::{Error, Result};

use crate::Table;

/// What a cleanup removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    /// Manifests removed.
    pub versions_removed: usize,
    /// Data, deletion, row-id, index and blob files removed.
    pub files_removed: usize,
    /// Bytes of those files.
    pub bytes_removed: u64,
    /// Crashed writers' partial uploads removed (local tables).
    pub staging_files_removed: usize,
}

impl Table {
    /// Removes versions older than `older_than` (never the latest or a tagged one) and files that
    /// no remaining version references and that are themselves older than `older_than`.
    ///
    /// Files younger than the retention are kept because a writer may be about to commit them:
    /// a retention shorter than the longest-running write is unsafe.
    pub async fn cleanup(&self, older_than: Duration) -> Result<CleanupReport> {
        let store = self.commit_store();
        let location = self.location();
        let now = SystemTime::now();
        let cutoff = now.checked_sub(older_than).unwrap_or(SystemTime::UNIX_EPOCH);
        let cutoff_ms = cutoff
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let latest = store
            .latest_version()
            .await?
            .ok_or_else(|| Error::not_found(format!("table {}", self.uri())))?;
        // Cleanup deletes files: a newer writer may reference files in ways this one cannot see.
        store.load_manifest(latest).await?.check_writable()?;
        let tagged: BTreeSet<u64> = self.tags().await?.iter().map(|t| t.version).collect();

        let mut report = CleanupReport::default();
        let mut referenced = BTreeSet::new();
        let mut expired = Vec::new();
        for version in store.list_versions().await? {
            if version > latest {
                // Committed while we looked: keep it and everything it needs.
                continue;
            }
            let manifest = store.load_manifest(version).await?;
            let keep = version == latest || tagged.contains(&version) || manifest.timestamp_ms >= cutoff_ms;
            if keep {
                for f in &manifest.data_files {
                    referenced.insert(f.path.clone());
                    referenced.extend(f.deletion.iter().map(|d| d.path.clone()));
                    referenced.extend(f.row_ids.iter().map(|r| r.path.clone()));
                    referenced.extend(f.blob_files.iter().map(|b| b.path.clone()));
                }
                referenced.extend(manifest.indexes.iter().flat_map(|i| i.files.iter().cloned()));
            } else {
                expired.push(version);
            }
        }
        // The hint must not point at a removed version.
        store.write_hint(latest).await;
        for version in expired {
            location.delete(&manifest_path(version)).await?;
            report.versions_removed += 1;
        }
        for dir in [DATA_DIR, DELETIONS_DIR, ROW_IDS_DIR, INDEXES_DIR, BLOBS_DIR] {
            for object in location.list(dir).await? {
                let Some(rel) = location.relative(&object.location) else {
                    continue;
                };
                let old = SystemTime::from(object.last_modified) < cutoff;
                if old && !referenced.contains(&rel) && !is_under_referenced_dir(&rel, &referenced) {
                    location.delete(&rel).await?;
                    report.files_removed += 1;
                    report.bytes_removed += object.size;
                }
            }
        }
        report.staging_files_removed = location.remove_local_staging_files(cutoff)?;
        Ok(report)
    }
}

/// Index entries may name a directory; everything under it is referenced.
fn is_under_referenced_dir(rel: &str, referenced: &BTreeSet<String>) -> bool {
    referenced
        .iter()
        .any(|r| rel.starts_with(r.as_str()) && rel.as_bytes().get(r.len()) == Some(&b'/'))
}
