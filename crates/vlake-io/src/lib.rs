//! Object store access for vlake: resolving table URIs to stores, typed error mapping, the commit
//! store (put-if-absent manifests and latest-version lookup), and instrumented stores for tests.

mod commit;
mod instrumented;
mod location;
mod s3;

pub use commit::{CommitOutcome, CommitStore};
pub use instrumented::{InstrumentedStore, IoCounters};
pub use location::TableLocation;
pub use object_store::{path::Path as StorePath, ObjectMeta, ObjectStore};
pub use s3::S3Timeouts;
