//! Building, updating and loading sidecar indexes: vector indexes (format-spec/indexes.md)
//! and full-text indexes (format-spec/fts.md, built in `text.rs`).
//!
//! An index is a list of *segments*: files under `_indexes/<index id>/`, each covering some
//! data files. Building writes one segment over every data file; an update adds a segment over
//! the files appended since, reusing the trained IVF model (HNSW builds a small new graph), so
//! nothing is retrained or rewritten.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use uuid::Uuid;
use vlake_format::layout::INDEXES_DIR;
use vlake_format::segment::{header_len, parse_header, SegmentHeader, PREFIX_LEN};
use vlake_format::{DataFile, Error, Field, IndexEntry, Result};
use vlake_index::hnsw::{Hnsw, HnswParams};
use vlake_index::ivf::{self, IvfMeta, IvfModel, IvfParams, Partition};
use vlake_index::Metric;
use vlake_io::TableLocation;
use vlake_text::{AnalyzerConfig, TextSegment};

use crate::session::{CacheKind, Session, SessionOptions};
use crate::txn::{remove_files, Action};
use crate::vectors::{file_vectors, FileVectors};
use crate::Table;

/// The kinds of index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexType {
    /// Inverted file with the vectors in each partition.
    IvfFlat,
    /// Inverted file with 8-bit product codes, re-ranked with the vectors.
    IvfPq,
    /// Hierarchical navigable small world graph.
    Hnsw,
    /// Full-text inverted index over a string column (format-spec/fts.md).
    Fts,
}

impl IndexType {
    /// The name recorded in the manifest.
    pub fn name(self) -> &'static str {
        match self {
            Self::IvfFlat => "ivf_flat",
            Self::IvfPq => "ivf_pq",
            Self::Hnsw => "hnsw",
            Self::Fts => "fts",
        }
    }
}

impl std::str::FromStr for IndexType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "ivf_flat" => Ok(Self::IvfFlat),
            "ivf_pq" => Ok(Self::IvfPq),
            "hnsw" => Ok(Self::Hnsw),
            "fts" => Ok(Self::Fts),
            other => Err(Error::invalid(format!(
                "unknown index type '{other}': use ivf_pq, hnsw or ivf_flat (vectors) or fts (text)"
            ))),
        }
    }
}

/// What to build.
#[derive(Clone, Debug)]
pub struct IndexOptions {
    /// The vector column (or string column, for `fts`).
    pub column: String,
    /// The kind of index.
    pub index_type: IndexType,
    /// The distance the index serves.
    pub metric: Metric,
    /// Index name (default `<column>_idx`).
    pub name: Option<String>,
    /// IVF parameters (IVF-Flat, IVF-PQ).
    pub ivf: IvfParams,
    /// HNSW parameters.
    pub hnsw: HnswParams,
    /// How text is analyzed (`fts`).
    pub analyzer: AnalyzerConfig,
}

impl IndexOptions {
    /// Defaults for `column` and `index_type`: the default analyzer (format-spec/fts.md), cosine, about `sqrt(rows)` partitions, as many PQ
    /// sub-vectors as the largest divisor of the dimension up to `dim / 8`, HNSW `m = 16`,
    /// `ef_construction = 100`.
    pub fn new(column: &str, index_type: IndexType) -> Self {
        Self {
            column: column.to_string(),
            index_type,
            metric: Metric::Cosine,
            name: None,
            ivf: IvfParams::default(),
            hnsw: HnswParams::default(),
            analyzer: AnalyzerConfig::default(),
        }
    }
}

/// Parameters recorded in the index entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct StoredParams {
    pub metric: Metric,
    #[serde(default)]
    pub ivf: Option<IvfParams>,
    #[serde(default)]
    pub hnsw: Option<HnswParams>,
}

impl StoredParams {
    pub fn from_entry(entry: &IndexEntry) -> Result<Self> {
        let value = serde_json::Value::Object(entry.params.clone().into_iter().collect());
        serde_json::from_value(value)
            .map_err(|e| Error::corrupt(format!("index '{}'", entry.name), format!("bad parameters: {e}")))
    }
}

/// The vector field named `column` and its dimension, or a clear error.
pub(crate) fn vector_field(table: &Table, column: &str) -> Result<(Field, usize)> {
    let field = table.table_schema().field(column)?;
    match field.vector_dim() {
        Some((dim, _)) if dim > 0 => Ok((field.clone(), dim as usize)),
        _ => Err(Error::invalid(format!(
            "column '{column}' is not a vector column (it is {}); vectors are fixed-size lists of float16 or float32",
            field.to_arrow(false).data_type()
        ))),
    }
}

/// The default PQ sub-vector count: the largest divisor of `dim` that is at most `dim / 8`.
fn default_subvectors(dim: usize) -> usize {
    (1..=(dim / 8).max(1))
        .rev()
        .find(|m| dim.is_multiple_of(*m))
        .unwrap_or(1)
}

/// Gathers the vectors of `files`; an index cannot hold NaN or infinite values.
async fn gather(table: &Table, files: &[&DataFile], field: &Field, dim: usize) -> Result<FileVectors> {
    let mut all = FileVectors::default();
    for f in files {
        let v = file_vectors(table.location(), table.session(), f, field, dim).await?;
        if let Some(i) = v.values.iter().position(|x| !x.is_finite()) {
            return Err(Error::invalid(format!(
                "row {} of column '{}' has a non-finite value; it cannot be indexed",
                v.ids[i / dim],
                field.name
            )));
        }
        all.ids.extend_from_slice(&v.ids);
        all.values.extend_from_slice(&v.values);
    }
    Ok(all)
}

pub(crate) async fn run_blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("index build task failed: {e}")))?
}

impl Table {
    /// Builds an index over every data file and commits it as a new version.
    pub async fn create_index(&self, opts: &IndexOptions) -> Result<Table> {
        let name = opts.name.clone().unwrap_or_else(|| format!("{}_idx", opts.column));
        vlake_format::Tag::validate_name(&name)
            .map_err(|_| Error::invalid(format!("index name '{name}' is invalid")))?;
        if opts.index_type == IndexType::Fts {
            return self.create_text_index(opts, name).await;
        }
        let (field, dim) = vector_field(self, &opts.column)?;
        if opts.index_type == IndexType::IvfPq {
            let m = opts.ivf.pq_subvectors.unwrap_or_else(|| default_subvectors(dim));
            if m == 0 || !dim.is_multiple_of(m) {
                return Err(Error::invalid(format!(
                    "PQ sub-vectors ({m}) must divide the dimension ({dim})"
                )));
            }
        }
        let files: Vec<&DataFile> = self.manifest().data_files.iter().collect();
        let data = gather(self, &files, &field, dim).await?;
        if data.ids.is_empty() {
            return Err(Error::invalid(format!(
                "column '{}' has no vectors to index",
                opts.column
            )));
        }
        let mut ivf_params = opts.ivf.clone();
        if opts.index_type == IndexType::IvfPq {
            ivf_params.pq_subvectors = Some(ivf_params.pq_subvectors.unwrap_or_else(|| default_subvectors(dim)));
        } else {
            ivf_params.pq_subvectors = None;
        }
        let params = StoredParams {
            metric: opts.metric,
            ivf: (opts.index_type != IndexType::Hnsw).then(|| ivf_params.clone()),
            hnsw: (opts.index_type == IndexType::Hnsw).then(|| opts.hnsw.clone()),
        };
        let id = Uuid::new_v4();
        let (kind, metric, hnsw) = (opts.index_type, opts.metric, opts.hnsw.clone());
        let bytes = run_blocking(move || {
            let FileVectors { ids, mut values, .. } = data;
            ivf::prepare(metric, &mut values, dim);
            match kind {
                IndexType::Hnsw => Hnsw::build(metric, dim, ids, values, &hnsw)?.write_segment(),
                IndexType::Fts => Err(Error::Internal("a full-text index reached the vector build".into())),
                IndexType::IvfFlat | IndexType::IvfPq => {
                    let model = IvfModel::fit(metric, dim, &values, &ivf_params)?;
                    {
                        let parts = model.partition(&ids, &values);
                        drop(values);
                        model.write_segment(parts)
                    }
                }
            }
        })
        .await?;
        self.commit_new_index(id, name, opts.index_type, field.id, &params, &files, bytes)
            .await
    }

    /// Writes the first segment of a new index `id` over `files` and commits its entry.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn commit_new_index(
        &self,
        id: Uuid,
        name: String,
        index_type: IndexType,
        field_id: i32,
        params: &impl Serialize,
        files: &[&DataFile],
        bytes: Vec<u8>,
    ) -> Result<Table> {
        let params = match serde_json::to_value(params).map_err(|e| Error::Internal(e.to_string()))? {
            serde_json::Value::Object(m) => m.into_iter().collect(),
            _ => return Err(Error::Internal("index parameters are not an object".into())),
        };
        let path = write_segment(self.location(), id, bytes).await?;
        let entry = IndexEntry {
            id,
            name,
            index_type: index_type.name().to_string(),
            field_ids: vec![field_id],
            params,
            built_at_version: self.version(),
            covered_files: files.iter().map(|f| f.path.clone()).collect(),
            files: vec![path.clone()],
        };
        self.commit_action(Action::PutIndex {
            entry,
            new_files: vec![path],
        })
        .await
    }

    /// Commits `entry` updated to cover `files` too, with a new segment of `bytes` (none when
    /// the files hold nothing to index).
    pub(crate) async fn commit_index_update(
        &self,
        entry: &IndexEntry,
        files: &[&DataFile],
        bytes: Option<Vec<u8>>,
    ) -> Result<Table> {
        let mut updated = entry.clone();
        let mut new_files = vec![];
        if let Some(bytes) = bytes {
            let path = write_segment(self.location(), entry.id, bytes).await?;
            updated.files.push(path.clone());
            new_files.push(path);
        }
        updated.covered_files.extend(files.iter().map(|f| f.path.clone()));
        updated.built_at_version = self.version();
        self.commit_action(Action::PutIndex {
            entry: updated,
            new_files,
        })
        .await
    }

    /// Adds a segment over the data files index `name` does not cover yet, and commits it.
    /// Returns this table unchanged when every file is covered.
    pub async fn update_index(&self, name: &str) -> Result<Table> {
        let entry = self
            .manifest()
            .indexes
            .iter()
            .find(|i| i.name == name)
            .ok_or_else(|| Error::not_found(format!("index '{name}' of table {}", self.uri())))?
            .clone();
        let field = self
            .table_schema()
            .fields
            .iter()
            .find(|f| entry.field_ids.first() == Some(&f.id))
            .ok_or_else(|| Error::corrupt(format!("index '{name}'"), "its column no longer exists"))?
            .clone();
        if entry.index_type == IndexType::Fts.name() {
            return self.update_text_index(&entry, &field).await;
        }
        let (_, dim) = vector_field(self, &field.name)?;
        let files = self.uncovered_files(&entry.covered_files);
        if files.is_empty() {
            return Ok(self.clone());
        }
        let params = StoredParams::from_entry(&entry)?;
        let data = gather(self, &files, &field, dim).await?;
        let metric = params.metric;
        let bytes = if data.ids.is_empty() {
            None
        } else if let Some(hnsw) = params.hnsw.clone() {
            Some(
                run_blocking(move || {
                    let FileVectors { ids, mut values, .. } = data;
                    ivf::prepare(metric, &mut values, dim);
                    Hnsw::build(metric, dim, ids, values, &hnsw)?.write_segment()
                })
                .await?,
            )
        } else {
            let first = entry
                .files
                .first()
                .ok_or_else(|| Error::corrupt(format!("index '{name}'"), "it has no segments"))?;
            let model = match load_segment(self.location(), self.session(), first).await? {
                Segment::Ivf(seg) if seg.meta.dim == dim && seg.meta.metric == metric => seg.model.clone(),
                Segment::Ivf(seg) => {
                    return Err(Error::corrupt(
                        first,
                        format!(
                            "segment is for {} on {} dimensions; the index says {metric} on {dim}",
                            seg.meta.metric, seg.meta.dim
                        ),
                    ))
                }
                Segment::Hnsw(_) | Segment::Text(_) => {
                    return Err(Error::corrupt(first, "an IVF index holds another kind of segment"))
                }
            };
            Some(
                run_blocking(move || {
                    let FileVectors { ids, mut values, .. } = data;
                    ivf::prepare(metric, &mut values, dim);
                    {
                        let parts = model.partition(&ids, &values);
                        drop(values);
                        model.write_segment(parts)
                    }
                })
                .await?,
            )
        };
        self.commit_index_update(&entry, &files, bytes).await
    }
}

impl Table {
    /// The data files of this version not in `covered`.
    pub(crate) fn uncovered_files(&self, covered: &[String]) -> Vec<&DataFile> {
        let covered: HashSet<&str> = covered.iter().map(String::as_str).collect();
        self.manifest()
            .data_files
            .iter()
            .filter(|f| !covered.contains(f.path.as_str()))
            .collect()
    }
}

/// Writes a new segment file of index `id` (a plain put, before the commit) and returns its
/// path, `_indexes/<id>/<random uuid>.idx`. A put that fails may still have stored the object
/// (a lost response): it is removed then.
pub(crate) async fn write_segment(location: &TableLocation, id: Uuid, bytes: Vec<u8>) -> Result<String> {
    let path = format!("{INDEXES_DIR}/{id}/{}.idx", Uuid::new_v4().simple());
    if let Err(e) = location.put(&path, bytes).await {
        remove_files(location, std::iter::once(path.as_str())).await;
        return Err(e);
    }
    Ok(path)
}

/// A loaded IVF segment: the model, with partitions fetched on first use.
#[derive(Debug)]
pub(crate) struct IvfSegment {
    path: String,
    header: SegmentHeader,
    pub meta: IvfMeta,
    pub model: IvfModel,
    partitions: Mutex<HashMap<usize, Arc<Partition>>>,
}

impl IvfSegment {
    /// Partition `p`, read through `location` (only its blobs) the first time.
    pub async fn partition(&self, location: &TableLocation, p: usize) -> Result<Arc<Partition>> {
        if let Some(hit) = self.partitions.lock().unwrap_or_else(|e| e.into_inner()).get(&p) {
            return Ok(hit.clone());
        }
        let ids = self.header.blob(&format!("p{p}.ids"), &self.path)?;
        let vectors = self.header.blob(&format!("p{p}.vectors"), &self.path)?;
        let mut ranges: Vec<Range<u64>> = vec![ids, vectors];
        if self.meta.pq_subvectors.is_some() {
            ranges.push(self.header.blob(&format!("p{p}.codes"), &self.path)?);
        }
        let bytes = get_ranges(location, &self.path, &ranges).await?;
        let part = Arc::new(ivf::partition_from_blobs(
            &bytes[0],
            &bytes[1],
            bytes.get(2).map(|b| b.as_ref()),
            &self.meta,
            &self.path,
        )?);
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(p, part.clone());
        Ok(part)
    }
}

/// A loaded segment.
#[derive(Debug, Clone)]
pub(crate) enum Segment {
    Ivf(Arc<IvfSegment>),
    Hnsw(Arc<Hnsw>),
    Text(Arc<TextSegment>),
}

async fn get_ranges(location: &TableLocation, path: &str, ranges: &[Range<u64>]) -> Result<Vec<bytes::Bytes>> {
    let full = location.path(path);
    location.store().get_ranges(&full, ranges).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => {
            Error::not_found(format!("index file {path} of table {}", location.uri()))
        }
        other => Error::io(path, other),
    })
}

async fn get_range(location: &TableLocation, path: &str, range: Range<u64>) -> Result<bytes::Bytes> {
    let mut all = get_ranges(location, path, std::slice::from_ref(&range)).await?;
    all.pop().ok_or_else(|| Error::corrupt(path, "short read"))
}

/// Reads a segment's header, checking that it and every blob it names lie inside the file.
async fn read_header(location: &TableLocation, path: &str) -> Result<SegmentHeader> {
    let size = match location.head(path).await {
        Ok(meta) => meta.size,
        Err(Error::NotFound { .. }) => {
            return Err(Error::not_found(format!(
                "index file {path} of table {}",
                location.uri()
            )))
        }
        Err(e) => return Err(e),
    };
    let truncated = || Error::corrupt(path, format!("index segment is truncated ({size} bytes)"));
    if size < PREFIX_LEN as u64 {
        return Err(truncated());
    }
    let prefix = get_range(location, path, 0..PREFIX_LEN as u64).await?;
    let len = header_len(&prefix, path)?;
    if (PREFIX_LEN + len) as u64 > size {
        return Err(truncated());
    }
    let header = parse_header(
        &get_range(location, path, PREFIX_LEN as u64..(PREFIX_LEN + len) as u64).await?,
        path,
    )?;
    if header
        .blobs
        .values()
        .any(|(offset, length)| offset.checked_add(*length).is_none_or(|end| end > size))
    {
        return Err(truncated());
    }
    Ok(header)
}

/// Index segments, by table URI and path (segment files never change).
struct Segments;

impl CacheKind for Segments {
    type Key = (String, String);
    type Value = Segment;
    const NAME: &'static str = "index_segments";

    fn capacity(options: &SessionOptions) -> usize {
        options.index_cache_entries
    }
}

/// Loads a segment, from the session's cache when it was loaded before.
pub(crate) async fn load_segment(location: &TableLocation, session: &Session, path: &str) -> Result<Segment> {
    let key = (location.uri().to_string(), path.to_string());
    session
        .cache::<Segments>()
        .get_or_load(key, read_segment(location, path))
        .await
}

/// Reads a segment from storage.
async fn read_segment(location: &TableLocation, path: &str) -> Result<Segment> {
    let header = read_header(location, path).await?;
    let whole = || async {
        location.get(path).await.map_err(|e| match e {
            Error::NotFound { .. } => Error::not_found(format!("index file {path} of table {}", location.uri())),
            other => other,
        })
    };
    let segment = match header.kind.as_str() {
        "hnsw" => {
            let bytes = whole().await?;
            let path_owned = path.to_string();
            Segment::Hnsw(Arc::new(
                run_blocking(move || Hnsw::read_segment(&bytes, &header, &path_owned)).await?,
            ))
        }
        vlake_text::KIND => {
            let bytes = whole().await?;
            let path_owned = path.to_string();
            Segment::Text(Arc::new(
                run_blocking(move || TextSegment::read(&bytes, &header, &path_owned)).await?,
            ))
        }
        "ivf" => {
            let meta = ivf::meta(&header, path)?;
            let mut ranges = vec![header.blob("centroids", path)?];
            if meta.pq_subvectors.is_some() {
                ranges.push(header.blob("pq_codebooks", path)?);
            }
            let bytes = get_ranges(location, path, &ranges).await?;
            let model = IvfModel::from_blobs(&meta, &bytes[0], bytes.get(1).map(|b| b.as_ref()), path)?;
            Segment::Ivf(Arc::new(IvfSegment {
                path: path.to_string(),
                header,
                meta,
                model,
                partitions: Mutex::new(HashMap::new()),
            }))
        }
        other => return Err(Error::corrupt(path, format!("unknown index segment kind '{other}'"))),
    };
    Ok(segment)
}
