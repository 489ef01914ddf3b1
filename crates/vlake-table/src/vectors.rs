//! Reading a vector column as flat f32 values, with an in-process cache keyed by data file and
//! deletion file. Neither ever changes, so a cached entry is valid for as long as they exist.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, OnceLock};

use arrow_array::cast::AsArray;
use arrow_array::types::{Float16Type, Float32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType as ArrowType;
use futures::TryStreamExt;
use vlake_format::{DataFile, Error, Field, Result};
use vlake_io::TableLocation;

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
async fn read(location: &TableLocation, file: &DataFile, field: &Field, dim: usize) -> Result<FileVectors> {
    let task = ScanTask::of_file(file, vec![field.clone()], true);
    let mut out = FileVectors::default();
    let mut stream = task.execute(location).await?;
    while let Some(batch) = stream.try_next().await? {
        append_vectors(&batch, dim, &mut out)?;
    }
    Ok(out.finish(dim))
}

/// Table URI, data file, its deletion file (the cached rows are the live ones) and field id.
type Key = (String, String, Option<String>, i32);

struct Cache {
    entries: HashMap<Key, Arc<FileVectors>>,
    order: VecDeque<Key>,
    bytes: usize,
}

/// Cache budget: `VLAKE_VECTOR_CACHE_MB` (default 2048 MiB; 0 disables the cache).
fn budget() -> usize {
    static BUDGET: OnceLock<usize> = OnceLock::new();
    *BUDGET.get_or_init(|| {
        std::env::var("VLAKE_VECTOR_CACHE_MB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2048usize)
            << 20
    })
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(Cache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            bytes: 0,
        })
    })
}

/// The vectors of `file`, from the cache or storage (then cached while within budget, oldest
/// entries evicted first).
pub(crate) async fn file_vectors(
    location: &TableLocation,
    file: &DataFile,
    field: &Field,
    dim: usize,
) -> Result<Arc<FileVectors>> {
    let deletion = file.deletion.as_ref().map(|d| d.path.clone());
    let key = (location.uri().to_string(), file.path.clone(), deletion, field.id);
    // The cached vectors were read for a manifest that may have given another row count.
    crate::scan::load_footer(location, file).await?;
    if let Some(hit) = cache().lock().unwrap_or_else(|p| p.into_inner()).entries.get(&key) {
        return Ok(hit.clone());
    }
    let loaded = Arc::new(read(location, file, field, dim).await?);
    let size = loaded.bytes();
    if size <= budget() {
        let mut c = cache().lock().unwrap_or_else(|p| p.into_inner());
        while c.bytes + size > budget() {
            let Some(old) = c.order.pop_front() else { break };
            if let Some(e) = c.entries.remove(&old) {
                c.bytes -= e.bytes();
            }
        }
        if c.entries.insert(key.clone(), loaded.clone()).is_none() {
            c.order.push_back(key);
            c.bytes += size;
        }
    }
    Ok(loaded)
}
