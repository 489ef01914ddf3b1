//! Which transactions may be rebased over which concurrent commits (format-spec/commit.md).
//!
//! [`check_rebase`] decides every pair of (our action, their operation): a new action or
//! operation must be placed in `rule` before it compiles, so no wildcard decides that a future
//! operation is compatible.

use vlake_format::{Error, Manifest, Operation, Result};

use super::action::{Action, PendingCommit};

/// What a concurrent commit of each kind means for a transaction of each kind, before looking
/// at what the two touched.
#[derive(Debug, PartialEq)]
enum Rule {
    /// Rebased: the two are independent.
    Rebase,
    /// Rebased when the concurrent commit kept the schema and primary key the transaction
    /// wrote its files for.
    SameShape,
    /// Rebased when the index entry, the schema and the files it covers are as read.
    IndexIntact,
    /// Rebased when the schema and key are as read and every file the transaction changes is
    /// still there as it read it (and, for a backfill, no rows were added).
    FilesIntact,
    /// Not rebased; running the operation again on the newer version may succeed.
    Retry,
    /// Not rebased, and running it again as it is would not help.
    Refuse,
}

/// The rule for our `action` over their `op`, for every pair: each operation this vlake knows
/// is named (an unknown one is never absorbed), and each action has its rule.
fn rule(action: &Action, op: &Operation) -> Rule {
    use Operation as Op;
    let known = match op {
        Op::Create { .. }
        | Op::Append { .. }
        | Op::Overwrite { .. }
        | Op::Restore { .. }
        | Op::Index { .. }
        | Op::Delete { .. }
        | Op::Update { .. }
        | Op::Upsert { .. }
        | Op::AlterSchema { .. }
        | Op::Compact { .. } => true,
        Op::Other => false,
    };
    if !known {
        return Rule::Refuse;
    }
    match action {
        // Only the first version creates a table.
        Action::Create { .. } => Rule::Refuse,
        // A restore names the exact contents of the next version: it never absorbs a commit.
        Action::Restore { .. } => Rule::Refuse,
        Action::Append { .. } => Rule::SameShape,
        Action::PutIndex { .. } => Rule::IndexIntact,
        Action::Mutate { .. } | Action::Compact { .. } | Action::AlterSchema { .. } => Rule::FilesIntact,
        Action::Overwrite { .. } => match op {
            // Their rows are replaced as the rows we read would have been.
            Op::Create { .. }
            | Op::Append { .. }
            | Op::Delete { .. }
            | Op::Update { .. }
            | Op::Upsert { .. }
            | Op::Compact { .. } => Rule::Rebase,
            // Their contents, schema or index are a decision the overwrite did not see.
            Op::Overwrite { .. } | Op::Restore { .. } | Op::Index { .. } | Op::AlterSchema { .. } => Rule::Retry,
            Op::Other => Rule::Refuse,
        },
    }
}

/// Whether `ours` (based on `read`) may be rebased over `theirs`, which committed in between.
pub(crate) fn check_rebase(ours: &PendingCommit, theirs: &Manifest) -> Result<()> {
    let conflict = |reason: String, retryable: bool| {
        Err(Error::CommitConflict {
            version: theirs.version,
            reason,
            retryable,
        })
    };
    let op = &theirs.transaction.operation;
    let their_op = op.name();
    let read = ours.read.as_deref();
    let same_schema = read.is_some_and(|m| m.schema == theirs.schema);
    let same_key = read.is_some_and(|m| m.primary_key == theirs.primary_key);
    match (rule(&ours.action, op), &ours.action) {
        (_, Action::Create { .. }) => Err(Error::AlreadyExists {
            what: "the table (version 1 exists)".into(),
        }),
        (_, Action::Restore { from }) => conflict(
            format!(
                "a concurrent {their_op} committed after version {} was read; restore version {} again to discard it",
                theirs.version - 1,
                from.version
            ),
            false,
        ),
        (Rule::Refuse, _) => conflict(
            "a newer vlake committed an operation this one does not know".into(),
            false,
        ),
        (Rule::Retry, _) => conflict(format!("a concurrent {their_op} replaced the table contents"), true),
        (Rule::Rebase, _) => Ok(()),
        (Rule::SameShape, _) if !same_schema => conflict(
            format!("a concurrent {their_op} changed the schema; the data was written for the old one"),
            false,
        ),
        (Rule::SameShape, _) if !same_key => conflict(
            format!("a concurrent {their_op} changed the primary key; the data was not checked against it"),
            false,
        ),
        (Rule::SameShape, _) => Ok(()),
        (Rule::IndexIntact, action) => check_index(ours, action, theirs, same_schema),
        (Rule::FilesIntact, action) => {
            if !same_schema {
                return conflict(format!("a concurrent {their_op} changed the schema"), true);
            }
            if !same_key {
                return conflict(format!("a concurrent {their_op} changed the primary key"), true);
            }
            if let Action::AlterSchema { groups, .. } = action {
                if !groups.is_empty() && adds_rows(op) {
                    return conflict(
                        format!("a concurrent {their_op} added rows that the backfill did not see"),
                        true,
                    );
                }
            }
            // Rebase only when every file we change is still there as we read it.
            match action
                .touched_files()
                .into_iter()
                .find(|f| !theirs.data_files.contains(f))
            {
                Some(f) => conflict(
                    format!("a concurrent {their_op} changed or removed data file {}", f.path),
                    true,
                ),
                None => Ok(()),
            }
        }
    }
}

/// The [`Rule::IndexIntact`] check of an index build or update.
fn check_index(ours: &PendingCommit, action: &Action, theirs: &Manifest, same_schema: bool) -> Result<()> {
    let Action::PutIndex { entry, .. } = action else {
        return Err(Error::Internal(
            "an index check of an action that is no index build".into(),
        ));
    };
    let their_op = theirs.transaction.operation.name();
    let conflict = |reason: String| {
        Err(Error::CommitConflict {
            version: theirs.version,
            reason,
            retryable: true,
        })
    };
    let read_entry = ours
        .read
        .as_ref()
        .and_then(|m| m.indexes.iter().find(|i| i.name == entry.name));
    let their_entry = theirs.indexes.iter().find(|i| i.name == entry.name);
    let missing = entry
        .covered_files
        .iter()
        .find(|f| !theirs.data_files.iter().any(|d| &d.path == *f));
    if read_entry != their_entry {
        conflict(format!("index '{}' was changed by a concurrent {their_op}", entry.name))
    } else if let Some(file) = missing {
        conflict(format!(
            "a concurrent {their_op} removed data file {file}, which the index covers"
        ))
    } else if !same_schema {
        conflict(format!("a concurrent {their_op} changed the schema"))
    } else {
        Ok(())
    }
}

/// Whether a commit of `operation` may have added rows with keys not seen before (compaction
/// and schema backfills rewrite existing rows; deletes only remove rows).
pub(crate) fn adds_rows(operation: &Operation) -> bool {
    match operation {
        Operation::Compact { .. }
        | Operation::AlterSchema { .. }
        | Operation::Delete { .. }
        | Operation::Index { .. } => false,
        Operation::Create { .. }
        | Operation::Append { .. }
        | Operation::Overwrite { .. }
        | Operation::Restore { .. }
        | Operation::Update { .. }
        | Operation::Upsert { .. }
        | Operation::Other => true,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use proptest::prelude::*;
    use uuid::Uuid;
    use vlake_format::{
        DataFile, DataType, DeletionFile, Field, FileFormat, IndexEntry, Schema, Transaction, FORMAT_VERSION,
    };

    use super::super::action::{CompactedGroup, FileChange};
    use super::super::apply::apply;
    use super::super::StagedFile;
    use super::*;

    fn schema(columns: i32) -> Schema {
        Schema {
            fields: (1..=columns)
                .map(|id| Field {
                    id,
                    name: format!("c{id}"),
                    data_type: DataType::Int64,
                    nullable: true,
                    metadata: BTreeMap::new(),
                    initial_default: None,
                })
                .collect(),
        }
    }

    fn data_file(name: &str, row_id_start: u64) -> DataFile {
        DataFile {
            path: format!("data/{name}.parquet"),
            format: FileFormat::Parquet,
            num_rows: 10,
            size_bytes: 100,
            row_id_start,
            stats: vec![],
            deletion: None,
            row_ids: None,
            blob_files: vec![],
        }
    }

    fn staged(name: &str) -> StagedFile {
        StagedFile {
            path: format!("data/{name}.parquet"),
            num_rows: 10,
            size_bytes: 100,
            stats: vec![],
            deletion: None,
            blob_files: vec![],
            new_blobs: vec![],
        }
    }

    fn index(covered: &[&str]) -> IndexEntry {
        IndexEntry {
            id: Uuid::new_v4(),
            name: "idx".into(),
            index_type: "hnsw".into(),
            field_ids: vec![1],
            params: BTreeMap::new(),
            built_at_version: 1,
            covered_files: covered.iter().map(|c| format!("data/{c}.parquet")).collect(),
            files: vec![],
        }
    }

    /// Version 1: files f1..f3 (rows 0..30), one column, an index covering f1 and f2.
    fn read_version() -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            reader_features: Default::default(),
            writer_features: Default::default(),
            version: 1,
            parent_version: None,
            timestamp_ms: 0,
            max_field_id: 1,
            primary_key: vec![],
            schema: schema(1),
            next_row_id: 30,
            data_files: vec![data_file("f1", 0), data_file("f2", 10), data_file("f3", 20)],
            indexes: vec![index(&["f1", "f2"])],
            properties: Default::default(),
            transaction: Transaction {
                id: Uuid::new_v4(),
                read_version: 0,
                operation: Operation::Create { rows: 30 },
            },
        }
    }

    fn their_operation(kind: usize) -> Operation {
        [
            Operation::Create { rows: 1 },
            Operation::Append { rows: 10 },
            Operation::Overwrite { rows: 10 },
            Operation::Restore { restored_version: 1 },
            Operation::Index { name: "idx".into() },
            Operation::Delete { rows: 1 },
            Operation::Update { rows: 1 },
            Operation::Upsert {
                inserted: 1,
                updated: 1,
                deleted: 0,
            },
            Operation::AlterSchema {
                changes: vec!["add column c2".into()],
            },
            Operation::Compact {
                files_removed: 1,
                files_added: 1,
            },
            Operation::Other,
        ][kind]
            .clone()
    }

    /// What the concurrent commit did, beyond its operation's name.
    #[derive(Debug, Clone)]
    struct Theirs {
        op: usize,
        changed_schema: bool,
        changed_key: bool,
        removed_f1: bool,
        changed_index: bool,
        added_file: bool,
    }

    fn their_version(read: &Manifest, t: &Theirs) -> Manifest {
        let mut m = read.clone();
        m.version = 2;
        m.parent_version = Some(1);
        m.transaction = Transaction {
            id: Uuid::new_v4(),
            read_version: 1,
            operation: their_operation(t.op),
        };
        if t.changed_schema {
            m.schema = schema(2);
            m.max_field_id = 2;
        }
        if t.changed_key {
            m.primary_key = vec![1];
        }
        if t.removed_f1 {
            m.data_files.retain(|f| !f.path.contains("f1"));
            m.indexes[0].covered_files.retain(|f| !f.contains("f1"));
        }
        if t.changed_index {
            m.indexes[0].id = Uuid::new_v4();
        }
        if t.added_file {
            m.data_files.push(data_file("g1", m.next_row_id));
            m.next_row_id += 10;
        }
        m
    }

    /// Our action of each kind, touching f1 where the kind touches files.
    fn our_action(kind: usize, read: &Arc<Manifest>) -> Action {
        let f1 = read.data_files[0].clone();
        let mut deleted = f1.clone();
        deleted.deletion = Some(DeletionFile {
            path: "_deletions/d1.bin".into(),
            num_deleted: 1,
        });
        let group = || CompactedGroup {
            sources: vec![f1.clone()],
            outputs: vec![DataFile {
                path: "data/h1.parquet".into(),
                ..f1.clone()
            }],
        };
        match kind {
            0 => Action::Create {
                schema: schema(1),
                primary_key: vec![],
                files: vec![staged("a1")],
            },
            1 => Action::Append {
                files: vec![staged("a1")],
            },
            2 => Action::Overwrite {
                schema: schema(1),
                max_field_id: 1,
                primary_key: vec![],
                files: vec![staged("a1")],
            },
            3 => Action::Restore { from: read.clone() },
            4 => Action::PutIndex {
                entry: IndexEntry {
                    built_at_version: 1,
                    ..index(&["f1", "f2", "f3"])
                },
                new_files: vec![],
            },
            5 => Action::Mutate {
                operation: Operation::Update { rows: 1 },
                changes: vec![FileChange {
                    old: f1.clone(),
                    new: Some(deleted),
                }],
                appended: vec![staged("a1")],
                written: vec![],
                keys: None,
            },
            6 => Action::Compact {
                groups: vec![group()],
                written: vec![],
            },
            7 => Action::AlterSchema {
                schema: schema(1),
                changes: vec!["rename".into()],
                groups: vec![],
                written: vec![],
            },
            _ => Action::AlterSchema {
                schema: schema(1),
                changes: vec!["backfill".into()],
                groups: vec![group()],
                written: vec![],
            },
        }
    }

    fn theirs_strategy() -> impl Strategy<Value = Theirs> {
        (0..11usize, any::<[bool; 5]>()).prop_map(|(op, b)| Theirs {
            op,
            changed_schema: b[0],
            changed_key: b[1],
            removed_f1: b[2],
            changed_index: b[3],
            added_file: b[4],
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Every pair of (our action, their operation), with what their commit touched.
        #[test]
        fn conflict_matrix(kind in 0..9usize, t in theirs_strategy()) {
            let read = Arc::new(read_version());
            let ours = PendingCommit { id: Uuid::new_v4(), read: Some(read.clone()), action: our_action(kind, &read) };
            let theirs = their_version(&read, &t);
            let outcome = check_rebase(&ours, &theirs);
            let retryable = match &outcome {
                Ok(()) => None,
                Err(Error::CommitConflict { retryable, .. }) => Some(*retryable),
                Err(Error::AlreadyExists { .. }) => { prop_assert_eq!(kind, 0); Some(false) }
                Err(e) => return Err(TestCaseError::fail(format!("unexpected error {e}"))),
            };
            // A table is created once; a restore and an unknown operation are never absorbed.
            if kind == 0 || kind == 3 || t.op == 10 {
                prop_assert_eq!(retryable, Some(false));
            }
            // Files written for one schema or key are not committed under another.
            let writes_rows_for_read_shape = matches!(kind, 1 | 4..=8);
            if writes_rows_for_read_shape && (t.changed_schema || t.changed_key && kind != 4) {
                prop_assert!(outcome.is_err(), "rebased across a schema or key change");
            }
            // A change to a file someone else removed is not applied to nothing.
            if matches!(kind, 5 | 6 | 8) && t.removed_f1 && t.op != 10 {
                prop_assert_eq!(retryable, Some(true));
            }
            // An index is not committed over a concurrent change of the same index.
            if kind == 4 && (t.changed_index || t.removed_f1) && t.op != 10 {
                prop_assert_eq!(retryable, Some(true));
            }
            if let Ok(()) = outcome {
                let next = apply(Some(&theirs), &ours).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(next.version, 3);
                prop_assert!(next.next_row_id >= theirs.next_row_id);
                let has = |p: &str| next.data_files.iter().any(|f| f.path == p);
                // No row id is given twice.
                let mut ids: Vec<(u64, u64)> = next.data_files.iter()
                    .filter(|f| f.row_ids.is_none())
                    .map(|f| (f.row_id_start, f.row_id_start + f.num_rows)).collect();
                ids.sort_unstable();
                prop_assert!(ids.windows(2).all(|w| w[0].1 <= w[1].0), "row ids reused: {:?}", ids);
                // Our new files are in; their files are kept unless ours replaced them.
                if matches!(kind, 1 | 2 | 5) {
                    prop_assert!(has("data/a1.parquet"));
                }
                if kind != 2 {
                    for f in &theirs.data_files {
                        let replaced = matches!(kind, 5 | 6 | 8) && f.path == "data/f1.parquet";
                        prop_assert!(replaced || has(&f.path), "lost {}", f.path);
                    }
                }
                for index in &next.indexes {
                    for f in &index.covered_files {
                        prop_assert!(has(f), "index covers missing {}", f);
                    }
                }
            }
        }
    }
}
