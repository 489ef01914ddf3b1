//! Streams of record batches: what writes consume and scans produce.

use std::pin::Pin;
use std::task::{Context, Poll};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::SchemaRef;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use vlake_format::{Error, Result};

/// A schema and an asynchronous stream of batches of that schema.
pub struct BatchStream {
    schema: SchemaRef,
    inner: BoxStream<'static, Result<RecordBatch>>,
}

impl std::fmt::Debug for BatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl BatchStream {
    /// Wraps a stream whose batches all have `schema`.
    pub fn new(schema: SchemaRef, inner: impl Stream<Item = Result<RecordBatch>> + Send + 'static) -> Self {
        Self {
            schema,
            inner: inner.boxed(),
        }
    }

    /// A stream over batches already in memory.
    pub fn from_batches(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Self::new(schema, futures::stream::iter(batches.into_iter().map(Ok)))
    }

    /// A stream over a synchronous Arrow reader (a Parquet, CSV or IPC file reader, an FFI
    /// stream). The reader is polled on the calling task.
    pub fn from_reader(reader: impl RecordBatchReader + Send + 'static) -> Self {
        let schema = reader.schema();
        Self::new(schema, futures::stream::iter(reader.map(|r| r.map_err(Error::from))))
    }

    /// The schema of the batches.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Collects every batch.
    pub async fn collect_batches(self) -> Result<Vec<RecordBatch>> {
        futures::TryStreamExt::try_collect(self.inner).await
    }
}

impl Stream for BatchStream {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.poll_next_unpin(cx)
    }
}
