//! Vector search for vlake: distance kernels, exact search, and the IVF-Flat, IVF-PQ and HNSW
//! indexes, over `(row id, vector)` data. This crate knows nothing of tables or storage; index
//! segments are serialised to and from bytes (format-spec/indexes.md).

pub mod distance;
pub mod flat;
pub mod hnsw;
pub mod ivf;
pub mod kmeans;
pub mod pq;
pub mod topk;

pub use distance::Metric;
pub use topk::{Neighbor, TopK};
