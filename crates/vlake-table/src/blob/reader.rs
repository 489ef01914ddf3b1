//! Reading blobs: one blob as a seekable stream with a bounded buffer, and the values of a
//! descriptor column.

use std::collections::BTreeMap;
use std::io::SeekFrom;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use arrow_array::{Array, ArrayRef, LargeBinaryArray};
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use vlake_format::{Error, Result};
use vlake_io::TableLocation;

use super::descriptors;

/// Bytes fetched per request while streaming a blob (two requests are in memory at most). Small
/// enough that the allocator's per-thread caches of freed chunks stay small too.
const DEFAULT_CHUNK_BYTES: usize = 2 << 20;

/// One blob, opened for reading without loading it whole: [`AsyncRead`] + [`AsyncSeek`] with a
/// bounded buffer (the chunk being read and one chunk read ahead), or ranges with
/// [`BlobReader::read_at`].
///
/// ```no_run
/// # async fn demo(table: vlake_table::Table) -> vlake_table::Result<()> {
/// use tokio::io::{AsyncReadExt, AsyncSeekExt};
/// let mut blob = table.open_blob(7, "video").await?;
/// blob.seek(std::io::SeekFrom::Start(1 << 20)).await.ok();
/// let mut header = [0u8; 16];
/// blob.read_exact(&mut header).await.ok();
/// # Ok(()) }
/// ```
pub struct BlobReader {
    location: TableLocation,
    /// The blob file, relative to the table root (empty for an empty blob).
    path: String,
    /// Where the blob starts in its file, and its size.
    start: u64,
    len: u64,
    /// The read position, relative to the blob.
    pos: u64,
    /// Bytes at blob position `buffer_at`.
    buffer: Bytes,
    buffer_at: u64,
    /// A fetch in flight, of the bytes at blob position `pending_at`.
    pending: Option<BoxFuture<'static, Result<Bytes>>>,
    pending_at: u64,
    chunk: usize,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("path", &self.path)
            .field("start", &self.start)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl BlobReader {
    /// The `len` bytes at `start` of blob file `path` of the table at `location`.
    pub(crate) fn new(location: TableLocation, path: &str, start: u64, len: u64) -> Self {
        Self {
            location,
            path: path.to_string(),
            start,
            len,
            pos: 0,
            buffer: Bytes::new(),
            buffer_at: 0,
            pending: None,
            pending_at: 0,
            chunk: DEFAULT_CHUNK_BYTES,
        }
    }

    /// Fetches `chunk_bytes` per request while streaming (default 2 MiB).
    pub fn with_chunk_size(mut self, chunk_bytes: usize) -> Self {
        self.chunk = chunk_bytes.max(1);
        self
    }

    /// The size of the blob in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The current read position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// Reads up to `len` bytes at `offset` of the blob with one ranged request (fewer when the
    /// blob ends first; none at or past its end). Does not move the read position; the future
    /// does not borrow the reader.
    pub fn read_at(
        &self,
        offset: u64,
        len: usize,
    ) -> impl std::future::Future<Output = Result<Bytes>> + Send + 'static {
        fetch(
            self.location.clone(),
            self.path.clone(),
            self.start,
            self.len,
            offset,
            len,
        )
    }

    fn start_fetch(&mut self, at: u64) {
        self.pending_at = at;
        self.pending = Some(
            fetch(
                self.location.clone(),
                self.path.clone(),
                self.start,
                self.len,
                at,
                self.chunk,
            )
            .boxed(),
        );
    }
}

/// Up to `len` bytes at `offset` of the blob of `size` bytes at `start` of `path`.
async fn fetch(location: TableLocation, path: String, start: u64, size: u64, offset: u64, len: usize) -> Result<Bytes> {
    let end = offset.saturating_add(len as u64).min(size);
    if offset >= end {
        return Ok(Bytes::new());
    }
    let range = start + offset..start + end;
    let bytes = location
        .get_ranges(&path, std::slice::from_ref(&range))
        .await?
        .pop()
        .unwrap_or_default();
    if bytes.len() as u64 != end - offset {
        return Err(Error::corrupt(
            &path,
            format!("blob file is shorter than a descriptor says (range {range:?})"),
        ));
    }
    Ok(bytes)
}

impl AsyncRead for BlobReader {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.pos >= this.len || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let buffered_end = this.buffer_at + this.buffer.len() as u64;
            if (this.buffer_at..buffered_end).contains(&this.pos) {
                let from = (this.pos - this.buffer_at) as usize;
                let n = (this.buffer.len() - from).min(buf.remaining());
                buf.put_slice(&this.buffer[from..from + n]);
                this.pos += n as u64;
                if this.pos == buffered_end && buffered_end < this.len && this.pending.is_none() {
                    // Read ahead while the caller uses what it got.
                    this.start_fetch(buffered_end);
                }
                return Poll::Ready(Ok(()));
            }
            if this.pending.is_none() || this.pending_at != this.pos {
                let pos = this.pos;
                this.start_fetch(pos);
            }
            let Some(pending) = this.pending.as_mut() else {
                continue;
            };
            let bytes = ready!(pending.as_mut().poll(cx)).map_err(std::io::Error::other)?;
            this.pending = None;
            this.buffer = bytes;
            this.buffer_at = this.pending_at;
        }
    }
}

impl AsyncSeek for BlobReader {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> std::io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => this.len.checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        };
        this.pos = target.ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek to a negative or overflowing position",
            )
        })?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

/// The values a descriptor column locates, as `LargeBinary`: one ranged request per blob file,
/// which the store may coalesce.
pub(crate) async fn fetch_bytes(location: &TableLocation, column: &dyn Array) -> Result<ArrayRef> {
    let descriptors = descriptors(column)?;
    let mut by_file: BTreeMap<&str, Vec<(usize, std::ops::Range<u64>)>> = BTreeMap::new();
    for (row, d) in descriptors.iter().enumerate() {
        if let Some(d) = d {
            if let Some(path) = &d.path {
                by_file
                    .entry(path)
                    .or_default()
                    .push((row, d.offset..d.offset + d.size));
            }
        }
    }
    let mut values: Vec<Option<Bytes>> = descriptors.iter().map(|d| d.as_ref().map(|_| Bytes::new())).collect();
    for (path, wanted) in by_file {
        let ranges: Vec<_> = wanted.iter().map(|(_, r)| r.clone()).collect();
        let got = location.get_ranges(path, &ranges).await?;
        for ((row, range), bytes) in wanted.into_iter().zip(got) {
            if bytes.len() as u64 != range.end - range.start {
                return Err(Error::corrupt(
                    path,
                    format!("blob file is shorter than a descriptor says (range {range:?})"),
                ));
            }
            values[row] = Some(bytes);
        }
    }
    Ok(Arc::new(LargeBinaryArray::from_iter(values)))
}
