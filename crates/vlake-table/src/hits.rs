//! What vector, full-text and hybrid search share: the bound on `k`, the default columns,
//! the rows a filter matches (cached per version), the live rows an index covers, and the
//! shaping of result batches.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{ArrayRef, RecordBatch, UInt64Array};
use arrow_schema::{DataType as ArrowType, Field as ArrowField, Schema as ArrowSchema};
use futures::{StreamExt, TryStreamExt};
use roaring::RoaringTreemap;
use vlake_format::{Error, IndexEntry, Result};

use crate::rows::FileRows;
use crate::session::{CacheKind, SessionOptions};
use crate::{Predicate, Table, ROW_ID};

/// The largest `k` a search accepts (range searches excepted).
pub const MAX_K: usize = 10_000;

/// The columns a search returns by default: every top-level column that is not a vector.
pub(crate) fn default_columns(table: &Table) -> Vec<String> {
    table
        .table_schema()
        .fields
        .iter()
        .filter(|f| f.vector_dim().is_none())
        .map(|f| f.name.clone())
        .collect()
}

/// `rows`, then `_rowid` (when `row_ids` are given), then the `extra` columns.
pub(crate) fn append_columns(
    rows: RecordBatch,
    extra: Vec<(ArrowField, ArrayRef)>,
    row_ids: Option<&[u64]>,
) -> Result<RecordBatch> {
    let mut fields: Vec<ArrowField> = rows.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = rows.columns().to_vec();
    if let Some(ids) = row_ids {
        fields.push(ArrowField::new(ROW_ID, ArrowType::UInt64, false));
        arrays.push(Arc::new(UInt64Array::from(ids.to_vec())));
    }
    for (field, array) in extra {
        fields.push(field);
        arrays.push(array);
    }
    let options = arrow_array::RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        Arc::new(ArrowSchema::new(fields)),
        arrays,
        &options,
    )?)
}

/// The row ids matching search filters, by table URI, version, commit id and filter.
struct FilterRows;

impl CacheKind for FilterRows {
    type Key = (String, u64, uuid::Uuid, String);
    type Value = Arc<HashSet<u64>>;
    const NAME: &'static str = "filter_rows";

    fn capacity(options: &SessionOptions) -> usize {
        options.filter_cache_entries
    }
}

/// Row ids matching the filter. Versions never change, so the set is cached in the session
/// per table, version and filter.
pub(crate) async fn matching_rows(table: &Table, filter: &Predicate) -> Result<Arc<HashSet<u64>>> {
    // The commit's transaction id tells apart two tables created at one URI.
    let m = table.manifest();
    let key = (
        table.uri().to_string(),
        m.version,
        m.transaction.id,
        format!("{filter:?}"),
    );
    table
        .session()
        .cache::<FilterRows>()
        .get_or_load(key, matching(table, filter))
        .await
}

/// Row ids matching the filter, from a scan.
async fn matching(table: &Table, filter: &Predicate) -> Result<Arc<HashSet<u64>>> {
    let scan = table
        .scan()
        .filter(filter.clone())
        .with_row_id(true)
        .columns(&filter.columns());
    let mut out = HashSet::new();
    for batch in scan.collect().await? {
        let ids = batch
            .column_by_name(ROW_ID)
            .ok_or_else(|| Error::Internal("scan lost _rowid".into()))?;
        out.extend(ids.as_primitive::<UInt64Type>().values().iter().copied());
    }
    Ok(Arc::new(out))
}

/// The live row ids of the data files `entry` covers: a segment may hold rows deleted since
/// it was written, or rows of files it no longer covers, and those are skipped.
pub(crate) async fn covered_live_rows(table: &Table, entry: &IndexEntry) -> Result<RoaringTreemap> {
    let location = table.location();
    let loads: Vec<_> = table
        .manifest()
        .data_files
        .iter()
        .filter(|file| entry.covered_files.contains(&file.path))
        .map(|file| FileRows::load(location, table.session(), file))
        .collect();
    let mut loads = futures::stream::iter(loads).buffered(16);
    let mut live = RoaringTreemap::new();
    while let Some(rows) = loads.try_next().await? {
        live |= rows.live_ids();
    }
    Ok(live)
}
