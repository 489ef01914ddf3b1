//! The commit core (format-spec/commit.md): what a transaction changes ([`action`]), how it
//! applies to a version ([`apply`]), which concurrent commits it may be rebased over
//! ([`conflict`]), the commit loop with the whole retry policy ([`commit`]), and the staged
//! files a transaction owns until it commits ([`staged`]).
//!
//! A writer writes its data files first, then tries to create the manifest of the next version
//! with put-if-absent. When another writer took that version, the two transactions are checked
//! for compatibility: compatible ones are rebased onto the winner and retried, incompatible ones
//! fail with [`vlake_format::Error::CommitConflict`]. A transaction is recognised by its id, so
//! an attempt whose outcome was unknown (an I/O error after the put) is never applied twice.
//!
//! This module imports nothing from the rest of the crate: reads, operations and search sit
//! above it.

pub(crate) mod action;
mod apply;
mod commit;
mod conflict;
mod staged;

pub(crate) use action::{Action, CompactedGroup, FileChange, PendingCommit, RowCheck};
pub(crate) use commit::{commit_owning_files, commit_planned, Plan};
pub(crate) use staged::{remove_files, StagedFiles};
pub use staged::{StagedFile, StagedMode, StagedWrite};
