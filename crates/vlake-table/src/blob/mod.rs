//! BLOB columns: values stored out of line in blob files, descriptors in the rows
//! (format-spec/data-files.md#blob-columns).
//!
//! A [`BlobWriter`] packs small values into shared blob files and streams large ones into a
//! file each, through multipart uploads, so a value read from a file or a stream never has to be
//! in memory whole. Data files hold a descriptor per value: the blob file, the offset and the
//! size.

mod api;
mod reader;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use arrow_array::{Array, ArrayRef, StringArray, StructArray, UInt64Array};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType as ArrowType;
use bytes::{Bytes, BytesMut};
use object_store::buffered::BufWriter;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use vlake_format::layout::blob_file_path;
use vlake_format::schema::blob_descriptor_type;
use vlake_format::{BlobFile, Error, Field, Result};
use vlake_io::TableLocation;

pub(crate) use reader::fetch_bytes;
pub use reader::BlobReader;

/// A packed blob file is closed once it holds this many bytes.
const PACKED_FILE_BYTES: u64 = 64 << 20;
/// A value at least this large gets a blob file of its own.
const OWN_FILE_BYTES: u64 = 8 << 20;
/// Part size of multipart uploads (S3 needs at least 5 MiB).
const PART_BYTES: usize = 8 << 20;
/// Parts uploaded at once per blob file: bounds the memory a write holds.
const UPLOAD_CONCURRENCY: usize = 2;
/// Bytes read from a source per step when streaming it.
const READ_CHUNK_BYTES: usize = 1 << 20;

/// Where the bytes of a blob to write come from.
pub enum BlobSource {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A local file, streamed when large.
    File(PathBuf),
    /// An asynchronous reader, streamed to its end.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

impl std::fmt::Debug for BlobSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "BlobSource::Bytes({} bytes)", b.len()),
            Self::File(p) => write!(f, "BlobSource::File({})", p.display()),
            Self::Reader(_) => f.write_str("BlobSource::Reader"),
        }
    }
}

/// How scans return BLOB columns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlobMode {
    /// Descriptors `{path, offset, size}` (cheap: no blob file is read).
    #[default]
    Descriptors,
    /// The values, as `LargeBinary` (every blob of the result is read into memory).
    Bytes,
}

impl std::str::FromStr for BlobMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "descriptors" => Ok(Self::Descriptors),
            "bytes" => Ok(Self::Bytes),
            other => Err(Error::invalid(format!(
                "blob mode '{other}' (use 'descriptors' or 'bytes')"
            ))),
        }
    }
}

/// Where one blob is: `path` is `None` for an empty blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Descriptor {
    pub path: Option<String>,
    pub offset: u64,
    pub size: u64,
}

impl Descriptor {
    const EMPTY: Self = Self {
        path: None,
        offset: 0,
        size: 0,
    };
}

/// The descriptors of a BLOB column, row by row (`None` for a null value).
pub(crate) fn descriptors(column: &dyn Array) -> Result<Vec<Option<Descriptor>>> {
    let corrupt = || Error::corrupt("a BLOB column", format!("descriptors have type {}", column.data_type()));
    let s = column.as_struct_opt().ok_or_else(corrupt)?;
    let (Some(path), Some(offset), Some(size)) = (
        s.column(0).as_string_opt::<i32>(),
        s.column(1).as_primitive_opt::<UInt64Type>(),
        s.column(2).as_primitive_opt::<UInt64Type>(),
    ) else {
        return Err(corrupt());
    };
    (0..s.len())
        .map(|i| {
            if s.is_null(i) {
                return Ok(None);
            }
            if offset.is_null(i) || size.is_null(i) {
                return Err(Error::corrupt(
                    "a BLOB column",
                    format!("descriptor {i} has no offset or size"),
                ));
            }
            Ok(Some(Descriptor {
                path: path.is_valid(i).then(|| path.value(i).to_string()),
                offset: offset.value(i),
                size: size.value(i),
            }))
        })
        .collect()
}

/// A descriptor column from descriptors (`None`: a null value).
fn descriptor_array(values: &[Option<Descriptor>]) -> Result<ArrayRef> {
    let ArrowType::Struct(fields) = blob_descriptor_type() else {
        return Err(Error::Internal("the descriptor type is not a struct".into()));
    };
    // Members are null where the value is null, so that engines reading a member see a null.
    let get = |f: fn(&Descriptor) -> u64| values.iter().map(|d| d.as_ref().map(f)).collect::<UInt64Array>();
    let path: StringArray = values.iter().map(|d| d.as_ref().and_then(|d| d.path.clone())).collect();
    let nulls = NullBuffer::from(values.iter().map(Option::is_some).collect::<Vec<_>>());
    Ok(Arc::new(StructArray::try_new(
        fields,
        vec![Arc::new(path), Arc::new(get(|d| d.offset)), Arc::new(get(|d| d.size))],
        Some(nulls).filter(|n| n.null_count() > 0),
    )?))
}

/// A blob file being written.
struct OpenBlobFile {
    path: String,
    writer: BufWriter,
    size: u64,
}

impl OpenBlobFile {
    fn create(location: &TableLocation) -> Self {
        let path = blob_file_path(&uuid::Uuid::new_v4().simple().to_string());
        let writer = BufWriter::with_capacity(location.store().clone(), location.path(&path), PART_BYTES)
            .with_max_concurrency(UPLOAD_CONCURRENCY);
        Self { path, writer, size: 0 }
    }

    async fn put(&mut self, bytes: Bytes) -> Result<()> {
        self.size += bytes.len() as u64;
        self.writer.put(bytes).await.map_err(|e| Error::io(&self.path, e))
    }

    async fn close(mut self) -> Result<BlobFile> {
        self.writer.shutdown().await.map_err(|e| Error::io(&self.path, e))?;
        Ok(BlobFile {
            path: self.path,
            size_bytes: self.size,
        })
    }
}

/// Writes the blob files of one write and turns BLOB values into descriptors.
pub(crate) struct BlobWriter {
    location: TableLocation,
    /// The packed file being filled.
    packed: Option<OpenBlobFile>,
    /// The blob files this writer completed.
    written: Vec<BlobFile>,
    /// Blob files of the table that input descriptors may point into, with their sizes.
    known: BTreeMap<String, u64>,
    /// Known blob files whose values are copied into new blob files (compaction).
    relocate: BTreeSet<String>,
}

impl BlobWriter {
    /// A writer whose input descriptors may point into the blob files `known`.
    pub fn new(location: &TableLocation, known: BTreeMap<String, u64>) -> Self {
        Self {
            location: location.clone(),
            packed: None,
            written: vec![],
            known,
            relocate: BTreeSet::new(),
        }
    }

    /// Copies the values that input descriptors locate in these blob files into new files.
    pub fn relocating(mut self, files: BTreeSet<String>) -> Self {
        self.relocate = files;
        self
    }

    /// Stores a value held in memory.
    async fn put_bytes(&mut self, bytes: Bytes) -> Result<Descriptor> {
        let size = bytes.len() as u64;
        if size == 0 {
            return Ok(Descriptor::EMPTY);
        }
        if size >= OWN_FILE_BYTES {
            let mut file = OpenBlobFile::create(&self.location);
            let path = file.path.clone();
            file.put(bytes).await?;
            self.written.push(file.close().await?);
            return Ok(Descriptor {
                path: Some(path),
                offset: 0,
                size,
            });
        }
        let location = &self.location;
        let file = self.packed.get_or_insert_with(|| OpenBlobFile::create(location));
        let descriptor = Descriptor {
            path: Some(file.path.clone()),
            offset: file.size,
            size,
        };
        file.put(bytes).await?;
        if file.size >= PACKED_FILE_BYTES {
            self.close_packed().await?;
        }
        Ok(descriptor)
    }

    /// Streams `reader` to its end into a blob file of its own.
    async fn put_stream(&mut self, mut reader: impl AsyncRead + Unpin) -> Result<Descriptor> {
        let mut file = OpenBlobFile::create(&self.location);
        let result: Result<()> = async {
            loop {
                let mut chunk = BytesMut::with_capacity(READ_CHUNK_BYTES);
                while chunk.len() < READ_CHUNK_BYTES {
                    let n = reader
                        .read_buf(&mut chunk)
                        .await
                        .map_err(|e| Error::io(format!("the source of blob {}", file.path), e))?;
                    if n == 0 {
                        break;
                    }
                }
                if chunk.is_empty() {
                    return Ok(());
                }
                file.put(chunk.freeze()).await?;
            }
        }
        .await;
        if let Err(e) = result {
            let _ = file.writer.abort().await;
            return Err(e);
        }
        if file.size == 0 {
            // Nothing was uploaded: a writer with no bytes never started an upload.
            return Ok(Descriptor::EMPTY);
        }
        let (path, size) = (file.path.clone(), file.size);
        self.written.push(file.close().await?);
        Ok(Descriptor {
            path: Some(path),
            offset: 0,
            size,
        })
    }

    /// Stores a value from `source`.
    pub async fn put(&mut self, source: BlobSource) -> Result<Descriptor> {
        match source {
            BlobSource::Bytes(bytes) => self.put_bytes(bytes).await,
            BlobSource::File(path) => {
                let name = path.display().to_string();
                let file = tokio::fs::File::open(&path).await.map_err(|e| Error::io(&name, e))?;
                let len = file.metadata().await.map_err(|e| Error::io(&name, e))?.len();
                if len >= OWN_FILE_BYTES {
                    return self.put_stream(file).await;
                }
                let bytes = tokio::fs::read(&path).await.map_err(|e| Error::io(&name, e))?;
                self.put_bytes(bytes.into()).await
            }
            BlobSource::Reader(reader) => self.put_stream(reader).await,
        }
    }

    async fn close_packed(&mut self) -> Result<()> {
        if let Some(file) = self.packed.take() {
            self.written.push(file.close().await?);
        }
        Ok(())
    }

    /// The size of a blob file descriptors may point into (bytes so far for the open one).
    pub fn file_size(&self, path: &str) -> Option<u64> {
        self.known
            .get(path)
            .copied()
            .or_else(|| self.written.iter().find(|b| b.path == path).map(|b| b.size_bytes))
            .or_else(|| self.packed.as_ref().filter(|p| p.path == path).map(|p| p.size))
    }

    /// Turns a BLOB column of a write into descriptors: values (`Binary`, `LargeBinary`) are
    /// stored; descriptors must point into known blob files (and are copied when those are
    /// being relocated). The blob files the result points into are added to `refs`.
    pub async fn externalize(
        &mut self,
        field: &Field,
        column: &ArrayRef,
        refs: &mut BTreeSet<String>,
    ) -> Result<ArrayRef> {
        let mut out = Vec::with_capacity(column.len());
        match column.data_type() {
            ArrowType::Binary | ArrowType::LargeBinary => {
                let values = arrow_cast::cast(column, &ArrowType::LargeBinary)?;
                let values = values.as_binary::<i64>();
                for i in 0..values.len() {
                    out.push(match values.is_valid(i) {
                        true => Some(self.put_bytes(Bytes::copy_from_slice(values.value(i))).await?),
                        false => None,
                    });
                }
            }
            _ => {
                for d in descriptors(column.as_ref())? {
                    out.push(match d {
                        Some(d) => Some(self.carry(field, d).await?),
                        None => None,
                    });
                }
            }
        }
        refs.extend(out.iter().flatten().filter_map(|d| d.path.clone()));
        descriptor_array(&out)
    }

    /// Keeps an input descriptor that points into a known blob file, or copies its value.
    async fn carry(&mut self, field: &Field, d: Descriptor) -> Result<Descriptor> {
        let Some(path) = &d.path else {
            return Ok(Descriptor::EMPTY);
        };
        let Some(file_size) = self.file_size(path) else {
            return Err(Error::invalid(format!(
                "a descriptor in BLOB column '{}' points into '{path}', which is not a blob file of this table",
                field.name
            )));
        };
        if d.offset.checked_add(d.size).is_none_or(|end| end > file_size) {
            return Err(Error::invalid(format!(
                "a descriptor in BLOB column '{}' reaches past the end of '{path}' ({file_size} bytes)",
                field.name
            )));
        }
        if !self.relocate.contains(path) {
            return Ok(d);
        }
        let source = BlobReader::new(self.location.clone(), path, d.offset, d.size);
        if d.size >= OWN_FILE_BYTES {
            self.put_stream(source).await
        } else {
            let bytes = source.read_at(0, d.size as usize).await?;
            self.put_bytes(bytes).await
        }
    }

    /// Completes the open blob file.
    pub async fn finish(&mut self) -> Result<()> {
        self.close_packed().await
    }

    /// The blob files this writer completed.
    pub fn written(&self) -> &[BlobFile] {
        &self.written
    }

    /// Removes every blob file this writer wrote (best effort).
    pub async fn abort(&mut self) {
        if let Some(mut open) = self.packed.take() {
            let _ = open.writer.abort().await;
        }
        for file in self.written.drain(..) {
            let _ = self.location.delete(&file.path).await;
        }
    }
}
