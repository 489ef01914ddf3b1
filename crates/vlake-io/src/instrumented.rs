//! An object store wrapper that counts requests and can fail writes on purpose, for tests of
//! I/O budgets and faults.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions,
    PutOptions, PutPayload, PutResult, Result,
};

/// Request counters of an [`InstrumentedStore`].
#[derive(Debug, Default)]
pub struct IoCounters {
    /// `get` requests (whole or ranged).
    pub gets: AtomicU64,
    /// `put` requests (single and multipart).
    pub puts: AtomicU64,
    /// `list` requests.
    pub lists: AtomicU64,
    /// `head` requests.
    pub heads: AtomicU64,
    /// `delete` requests.
    pub deletes: AtomicU64,
    /// When non-zero, puts after this many fail with an injected error (nothing is written).
    pub fail_puts_after: AtomicU64,
    /// This many upcoming manifest puts are carried out but reported as failed, like a
    /// response lost on the network: the writer cannot tell whether its commit happened.
    pub ambiguous_manifest_puts: AtomicU64,
    /// This many upcoming manifest reads answer "not found", as when a cleanup removes a
    /// version between a writer's listing and its read.
    pub vanishing_manifest_gets: AtomicU64,
}

impl IoCounters {
    fn bump(counter: &AtomicU64) -> u64 {
        counter.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Wraps a store, counting requests in shared [`IoCounters`].
#[derive(Debug)]
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    counters: Arc<IoCounters>,
}

impl InstrumentedStore {
    /// Wraps `inner`; read the counts through `counters`.
    pub fn new(inner: Arc<dyn ObjectStore>, counters: Arc<IoCounters>) -> Self {
        Self { inner, counters }
    }

    fn check_put(&self, location: &Path) -> Result<()> {
        let n = IoCounters::bump(&self.counters.puts);
        let limit = self.counters.fail_puts_after.load(Ordering::SeqCst);
        if limit != 0 && n > limit {
            return Err(object_store::Error::Generic {
                store: "instrumented",
                source: format!("injected failure writing {location}").into(),
            });
        }
        Ok(())
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.check_put(location)?;
        let result = self.inner.put_opts(location, payload, opts).await?;
        let is_manifest = location.as_ref().contains("_versions/");
        let lose_response = is_manifest
            && self
                .counters
                .ambiguous_manifest_puts
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if lose_response {
            return Err(object_store::Error::Generic {
                store: "instrumented",
                source: format!("injected: response to the put of {location} was lost").into(),
            });
        }
        Ok(result)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.check_put(location)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        if options.head {
            IoCounters::bump(&self.counters.heads);
        } else {
            IoCounters::bump(&self.counters.gets);
        }
        let vanished = location.as_ref().contains("_versions/")
            && self
                .counters
                .vanishing_manifest_gets
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if vanished {
            return Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "injected: removed by a cleanup after it was listed".into(),
            });
        }
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Vec<bytes::Bytes>> {
        IoCounters::bump(&self.counters.gets);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        IoCounters::bump(&self.counters.deletes);
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        IoCounters::bump(&self.counters.lists);
        self.inner.list(prefix)
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        IoCounters::bump(&self.counters.lists);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        IoCounters::bump(&self.counters.lists);
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
