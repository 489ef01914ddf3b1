//! Reading a vector column as flat f32 values, cached in the session by data file and
//! deletion file. Neither ever changes, so a cached entry is valid for as long as they exist.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType as ArrowType;
use futures::TryStreamExt;
use vlake_format::{DataFile, Error, Field, Result};
use vlake_io::TableLocation;

use crate::session::{CacheKind, Session, SessionOptions};
use crate::ScanTask;

/// The vectors of one data file.
#[derive(Debug, Default)]
pub(crate) struct FileVectors {
    /// Row ids of the rows that have a vector.
    pub ids: Vec<u64>,
    /// Their vectors, row-major f32.
    pub values: Vec<f32>,
    /// Their Euclidean norms (filled by [`FileVectors::finish`]).
    pub norms: Vec<f32>,
}

impl FileVectors {
    pub fn bytes(&self) -> usize {
        self.ids.len() * 12 + self.values.len() * 4
    }

    /// Computes the norms once all vectors are in.
    fn finish(mut self, dim: usize) -> Self {
        self.norms = self.values.chunks_exact(dim).map(vlake_index::distance::norm).collect();
        self
    }

    /// The vectors as a search block.
    pub fn block(&self) -> vlake_index::flat::Block<'_> {
        vlake_index::flat::Block {
            ids: &self.ids,
            vectors: &self.values,
            norms: &self.norms,
        }
    }
}

/// Appends the non-null vectors of `batch`'s column 0 (row ids in column 1) to `out`.
pub(crate) fn append_vectors(batch: &RecordBatch, dim: usize, out: &mut FileVectors) -> Result<()> {
    let list = batch.column(0).as_fixed_size_list();
    let ids = batch.column(1).as_primitive::<UInt64Type>();
    let values: Vec<f32> = match list.values().data_type() {
        ArrowType::Float32 => list.values().as_primitive::<Float32Type>().values().to_vec(),
        ArrowType::Float16 => {
            let mut v = Vec::new();
            vlake_index::distance::f16_to_f32(list.values().as_primitive::<Float16Type>().values(), &mut v);
            v
        }
        other => return Err(Error::invalid(format!("vector element type {other} is not f16 or f32"))),
    };
    if list.null_count() == 0 {
        out.ids.extend_from_slice(ids.values());
        out.values.extend_from_slice(&values);
    } else {
        for i in 0..list.len() {
            if list.is_valid(i) {
                out.ids.push(ids.value(i));
                out.values.extend_from_slice(&values[i * dim..(i + 1) * dim]);
            }
        }
    }
    Ok(())
}

/// Reads the vectors of `file` from storage.
async fn read(
    location: &TableLocation,
    session: &Session,
    file: &DataFile,
    field: &Field,
    dim: usize,
) -> Result<FileVectors> {
    let task = ScanTask::of_file(file, vec![field.clone()], true);
    let mut out = FileVectors::default();
    let mut stream = task.execute(location, session).await?;
    while let Some(batch) = stream.try_next().await? {
        append_vectors(&batch, dim, &mut out)?;
    }
    Ok(out.finish(dim))
}

/// Decoded vectors, by table URI, data file, its deletion file (the cached rows are the live
/// ones) and field id.
struct Vectors;

impl CacheKind for Vectors {
    type Key = (String, String, Option<String>, i32);
    type Value = Arc<FileVectors>;
    const NAME: &'static str = "vectors";

    fn capacity(options: &SessionOptions) -> usize {
        options.vector_cache_bytes
    }

    fn weigh(value: &Arc<FileVectors>) -> usize {
        value.bytes()
    }
}

/// The vectors of `file`, from the session's cache or storage (then cached).
pub(crate) async fn file_vectors(
    location: &TableLocation,
    session: &Session,
    file: &DataFile,
    field: &Field,
    dim: usize,
) -> Result<Arc<FileVectors>> {
    let deletion = file.deletion.as_ref().map(|d| d.path.clone());
    let key = (location.uri().to_string(), file.path.clone(), deletion, field.id);
    // The cached vectors were read for a manifest that may have given another row count.
    crate::scan::load_footer(location, session, file).await?;
    session
        .cache::<Vectors>()
        .get_or_load(key, async {
            Ok(Arc::new(read(location, session, file, field, dim).await?))
        })
        .await
}
