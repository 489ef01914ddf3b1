//! The commit loop: catch up with concurrent commits, apply, put, retry. The whole retry
//! policy lives here.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use vlake_format::{DataFile, Error, Manifest, Result};
use vlake_io::{CommitOutcome, CommitStore};

use super::action::{Action, PendingCommit};
use super::apply::apply;
use super::conflict::{adds_rows, check_rebase};
use super::staged::StagedFiles;

/// For a transaction with a key check, fails when `theirs` (committed on top of `prev`) added a
/// row whose key the transaction also inserts.
async fn check_keys(
    store: &CommitStore,
    pending: &PendingCommit,
    prev: Option<&Manifest>,
    theirs: &Manifest,
) -> Result<()> {
    let Action::Mutate { keys: Some(keys), .. } = &pending.action else {
        return Ok(());
    };
    if !adds_rows(&theirs.transaction.operation) {
        return Ok(());
    }
    let added: Vec<&DataFile> = theirs
        .data_files
        .iter()
        .filter(|f| !prev.is_some_and(|p| p.data_files.iter().any(|o| o.path == f.path)))
        .collect();
    keys.check(store.location(), &added, theirs).await
}

/// Commits `pending` as [`commit`] does, owning the files it wrote: they are removed when the
/// commit certainly failed, and left (for cleanup) when it may have happened. Files the latest
/// version references (a staged write committed twice) are never removed.
pub(crate) async fn commit_owning_files(
    store: &CommitStore,
    pending: &PendingCommit,
    mut staged: StagedFiles,
    max_retries: u32,
) -> Result<Arc<Manifest>> {
    staged.adopt(pending.action.written_paths());
    let result = commit(store, pending, max_retries).await;
    match &result {
        Err(e) if certainly_failed(e) => staged.remove_unreferenced().await,
        _ => staged.release(),
    }
    result
}

/// What an operation that plans against the rows of a version (a merge matches its source
/// against the target's keys) makes of one version: its commit, or nothing to commit.
pub(crate) enum Plan<R> {
    /// Nothing changes; `R` is the outcome.
    Unchanged(R),
    /// Commit `pending`, owning `staged` (the files written for this plan), then return `R`.
    Commit {
        pending: Box<PendingCommit>,
        staged: StagedFiles,
        outcome: R,
    },
}

/// Commits what `plan` makes of `read`, planning again on the newest version when a concurrent
/// commit conflicts (retryably) with the plan: the retry policy of operations whose commit
/// depends on what the version they read holds. `inputs` owns the files the operation wrote
/// before planning (kept across plans): those the commit references are released, as are all
/// when the commit may have happened; the guard removes the rest. Returns the new manifest (`None` when
/// nothing changed) and the plan's outcome.
pub(crate) async fn commit_planned<R, F, Fut>(
    store: &CommitStore,
    mut read: Arc<Manifest>,
    max_retries: u32,
    inputs: &mut StagedFiles,
    mut plan: F,
) -> Result<(Option<Arc<Manifest>>, R)>
where
    F: FnMut(Arc<Manifest>) -> Fut,
    Fut: std::future::Future<Output = Result<Plan<R>>>,
{
    for attempt in 0..=max_retries {
        let (pending, staged, outcome) = match plan(Arc::clone(&read)).await? {
            Plan::Unchanged(outcome) => return Ok((None, outcome)),
            Plan::Commit {
                pending,
                staged,
                outcome,
            } => (pending, staged, outcome),
        };
        match commit_owning_files(store, &pending, staged, max_retries).await {
            Ok(manifest) => {
                inputs.release_committed(pending.action.new_paths());
                return Ok((Some(manifest), outcome));
            }
            Err(Error::CommitConflict { retryable: true, .. }) if attempt < max_retries => {
                backoff(attempt).await;
                read = match store.latest_version().await? {
                    Some(v) => Arc::new(store.load_manifest(v).await?),
                    None => return Err(Error::not_found(format!("table {}", store.location().uri()))),
                };
            }
            Err(e) => {
                if !certainly_failed(&e) {
                    inputs.release();
                }
                return Err(e);
            }
        }
    }
    Err(Error::CommitConflict {
        version: read.version.saturating_add(1),
        reason: format!("gave up after {max_retries} retries against concurrent writers"),
        retryable: true,
    })
}

/// Whether a commit that failed with `e` certainly did not happen, so that the files it wrote
/// may be removed: after a storage error or an unreadable manifest it may have, and cleanup
/// removes the files if it did not.
pub(crate) fn certainly_failed(e: &Error) -> bool {
    matches!(
        e,
        Error::CommitConflict { .. } | Error::AlreadyExists { .. } | Error::InvalidInput(_) | Error::Unsupported { .. }
    )
}

/// Storage failures tolerated in one commit before giving up.
const MAX_IO_RETRIES: u32 = 3;

/// Commits `pending`, retrying over compatible concurrent commits. Returns the new manifest.
///
/// Every attempt first rebases over all versions committed after its base (found by listing,
/// not by probing `base + 1`), so a put never creates a version below the latest one, even when
/// the base is stale or cleanup removed versions in between.
pub(crate) async fn commit(store: &CommitStore, pending: &PendingCommit, max_retries: u32) -> Result<Arc<Manifest>> {
    if let Some(read) = &pending.read {
        read.check_writable()?;
    }
    let mut base = pending.read.clone();
    let mut io_failures = 0;
    for attempt in 0..=max_retries {
        base = match catch_up(store, pending, base).await? {
            CatchUp::Committed(ours) => return Ok(ours),
            CatchUp::Rebased(rebased) => rebased,
            CatchUp::Moved(same) => {
                base = same;
                continue;
            }
        };
        let candidate = apply(base.as_deref(), pending)?;
        check_files_exist(store, pending).await?;
        match store.try_commit(&candidate).await {
            Ok(CommitOutcome::Committed) => {
                store.write_hint(candidate.version).await;
                return Ok(Arc::new(candidate));
            }
            // The next attempt's catch-up reads the winner (or our own earlier attempt).
            Ok(CommitOutcome::VersionTaken) => {}
            // The put may or may not have happened: the catch-up finds out by the transaction id.
            Err(e @ Error::Io { .. }) => {
                if !store.version_exists(candidate.version).await.unwrap_or(false) {
                    if io_failures >= MAX_IO_RETRIES || attempt >= max_retries {
                        return Err(e);
                    }
                    io_failures += 1;
                }
            }
            Err(e) => return Err(e),
        }
        backoff(attempt).await;
    }
    if let CatchUp::Committed(ours) = catch_up(store, pending, base.clone()).await? {
        return Ok(ours);
    }
    Err(Error::CommitConflict {
        version: base.map_or(Some(1), |b| b.version.checked_add(1)).unwrap_or(u64::MAX),
        reason: format!("gave up after {max_retries} retries against concurrent writers"),
        retryable: true,
    })
}

/// Fails when a file the commit would reference is gone, so that no version ever references a
/// missing file. Cleanup keeps unreferenced files younger than its minimum age
/// ([`crate::MIN_FILE_AGE`]); this catches a cleanup that was told to ignore it.
async fn check_files_exist(store: &CommitStore, pending: &PendingCommit) -> Result<()> {
    // Owned paths and locations keep the future `Send` for any lifetime (a borrowed closure
    // here trips rustc's higher-ranked `Send` check in callers).
    let paths: Vec<String> = pending
        .action
        .required_paths()
        .into_iter()
        .map(str::to_string)
        .collect();
    let location = store.location().clone();
    let mut checks = futures::stream::iter(paths)
        .map(move |path| {
            let location = location.clone();
            async move { location.exists(&path).await.map(|found| (path, found)) }
        })
        .buffer_unordered(16);
    while let Some((path, found)) = checks.try_next().await? {
        if !found {
            return Err(Error::CommitConflict {
                version: pending.read.as_ref().map_or(0, |m| m.version),
                reason: format!(
                    "file {path}, which this {} needs, was removed before it committed \
                     (a cleanup that ignored the minimum file age?); run it again",
                    pending.action.operation().name()
                ),
                retryable: true,
            });
        }
    }
    Ok(())
}

/// Where a transaction stands after reading the versions committed since its base.
enum CatchUp {
    /// An earlier attempt of this transaction committed this version.
    Committed(Arc<Manifest>),
    /// The transaction was rebased onto this base (the latest version; `None`: no versions).
    Rebased(Option<Arc<Manifest>>),
    /// The newest version listed was removed before it could be read: list again from this
    /// (unchanged) base.
    Moved(Option<Arc<Manifest>>),
}

/// Reads every version committed after `base`, checks that `pending` may be rebased over each,
/// and returns the latest as the new base.
///
/// Versions between `base` and the latest may be missing when cleanup removed them. Their
/// operations are unknown, so only an append, whose conflicts depend on the latest schema
/// alone, is rebased across such a gap; anything else fails with a retryable conflict.
async fn catch_up(store: &CommitStore, pending: &PendingCommit, base: Option<Arc<Manifest>>) -> Result<CatchUp> {
    let after = base.as_ref().map(|b| b.version);
    let newer = store.list_versions_after(after).await?;
    let newer_listed = newer.last().copied();
    let mut loaded = Vec::with_capacity(newer.len());
    for version in newer {
        // A listed version that is gone was removed by a cleanup since: it becomes a gap.
        let theirs = match store.load_manifest(version).await {
            Err(Error::NotFound { .. }) => continue,
            other => other?,
        };
        if theirs.transaction.id == pending.id {
            store.write_hint(theirs.version).await;
            return Ok(CatchUp::Committed(Arc::new(theirs)));
        }
        loaded.push(Arc::new(theirs));
    }
    // The newest listed version was removed by a cleanup since, which removes a version only
    // when a newer one exists: rebasing onto an older one would put a version whose number the
    // cleanup freed, below the latest. The caller lists again.
    if newer_listed.is_some() && loaded.last().map(|m| m.version) != newer_listed {
        return Ok(CatchUp::Moved(base));
    }
    let Some(latest) = loaded.last().cloned() else {
        return Ok(CatchUp::Rebased(base));
    };
    let Some(base) = base else {
        return Err(Error::AlreadyExists {
            what: format!("the table (version {} exists)", latest.version),
        });
    };
    let contiguous = loaded
        .iter()
        .zip(1u64..)
        .all(|(m, i)| base.version.checked_add(i) == Some(m.version));
    if !contiguous && !matches!(pending.action, Action::Append { .. }) {
        let first = loaded.first().map_or(latest.version, |m| m.version);
        return Err(Error::CommitConflict {
            version: latest.version,
            reason: format!(
                "versions after {} (up to {}) were removed by cleanup while this {} ran; \
                 run it again on the latest version",
                base.version,
                first.saturating_sub(1),
                pending.action.operation().name()
            ),
            retryable: true,
        });
    }
    let mut prev = base;
    for theirs in loaded {
        check_rebase(pending, &theirs)?;
        theirs.check_writable()?;
        check_keys(store, pending, Some(prev.as_ref()), &theirs).await?;
        prev = theirs;
    }
    Ok(CatchUp::Rebased(Some(prev)))
}

pub(crate) async fn backoff(attempt: u32) {
    let cap_ms = (5u64 << attempt.min(8)).min(1000);
    let ms = rand::rng().random_range(0..=cap_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}
