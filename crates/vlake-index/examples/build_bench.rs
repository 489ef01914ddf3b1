//! Times one index build over a raw matrix file the way a table builds it (prepare, train on
//! the sample, partition, serialise the segment), then measures recall@10 of queries against
//! given ground truth. Driven by `benchmarks/index_build.py`, which compares it with FAISS.
//!
//! ```text
//! cargo run -p vlake-index --release --example build_bench -- \
//!     BASE DIM METRIC KIND [partitions=P] [subvectors=M] [m=16] [ef_construction=100] \
//!     [queries=FILE gt=FILE] [settings=5,10,20,40] [refine=10]
//! ```
//! BASE and `queries` hold little-endian f32 rows of DIM values; `gt` holds 10 little-endian
//! u64 row numbers per query. METRIC is `l2`, `cosine` or `dot`; KIND `ivf_pq`, `ivf_flat` or
//! `hnsw`. `settings` are nprobes (IVF) or ef (HNSW) values. Prints one JSON object.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::Instant;

use vlake_index::hnsw::{Hnsw, HnswParams};
use vlake_index::ivf::{prepare, IvfModel, IvfParams};
use vlake_index::Metric;

const K: usize = 10;

fn read_f32(path: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn read_u64(path: &str) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// CPU seconds this process has used, user and system, all threads (Linux `/proc`; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime and stime are the
    // 12th and 13th, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|t| t.parse().ok())
        .collect();
    ticks.iter().sum::<f64>() / 100.0
}

/// Build phases and their seconds.
struct Timer {
    phases: Vec<(&'static str, f64)>,
    since: Instant,
}

impl Default for Timer {
    fn default() -> Self {
        Self {
            phases: Vec::new(),
            since: Instant::now(),
        }
    }
}

impl Timer {
    /// Ends phase `name`.
    fn lap(&mut self, name: &'static str) {
        self.phases.push((name, self.since.elapsed().as_secs_f64()));
        self.restart();
    }

    /// Starts timing again (after untimed work).
    fn restart(&mut self) {
        self.since = Instant::now();
    }
}

/// A search over the built index: prepared query and setting in, row ids out.
type Searcher<'a> = Box<dyn Fn(&[f32], usize) -> Vec<u64> + 'a>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, dim, metric, kind] = &args[..4] else {
        panic!("usage: build_bench BASE DIM METRIC KIND [key=value ...]");
    };
    let opts: HashMap<&str, &str> = args[4..].iter().filter_map(|a| a.split_once('=')).collect();
    let num = |key: &str, default: usize| opts.get(key).map_or(default, |v| v.parse().expect(key));
    let dim: usize = dim.parse().expect("DIM");
    let metric: Metric = metric.parse().expect("METRIC");

    let mut values = read_f32(base);
    let n = values.len() / dim;
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut timer = Timer::default();
    let cpu_start = cpu_seconds();
    prepare(metric, &mut values, dim);
    let (bytes, searcher): (usize, Searcher) = match kind.as_str() {
        "hnsw" => {
            let params = HnswParams {
                m: num("m", 16),
                ef_construction: num("ef_construction", 100),
            };
            let graph = Hnsw::build(metric, dim, ids, values, &params).unwrap();
            timer.lap("graph");
            let bytes = graph.write_segment().unwrap().len();
            timer.lap("serialise");
            let search = move |q: &[f32], ef: usize| -> Vec<u64> {
                graph
                    .search(q, K, ef, &|_| true)
                    .into_sorted()
                    .iter()
                    .map(|n| n.id)
                    .collect()
            };
            (bytes, Box::new(search))
        }
        "ivf_pq" | "ivf_flat" => {
            let params = IvfParams {
                partitions: opts.get("partitions").map(|p| p.parse().expect("partitions")),
                pq_subvectors: (kind == "ivf_pq").then(|| num("subvectors", dim / 8)),
                ..IvfParams::default()
            };
            let model = IvfModel::fit(metric, dim, &values, &params).unwrap();
            timer.lap("train");
            let parts = model.partition(&ids, &values);
            drop(values);
            timer.lap("partition");
            // Serialising consumes the partitions; search a copy (not timed).
            let kept = parts.clone();
            timer.restart();
            let bytes = model.write_segment(parts).unwrap().len();
            timer.lap("serialise");
            let refine = num("refine", 10);
            let search = move |q: &[f32], nprobes: usize| -> Vec<u64> {
                let probed: Vec<_> = model.probe(q, nprobes).into_iter().map(|p| (p, &kept[p])).collect();
                model
                    .search(q, &probed, K, refine, &|_| true)
                    .into_sorted()
                    .iter()
                    .map(|n| n.id)
                    .collect()
            };
            (bytes, Box::new(search))
        }
        other => panic!("unknown index kind '{other}'"),
    };
    let build_s: f64 = timer.phases.iter().map(|p| p.1).sum();
    let build_cpu_s = cpu_seconds() - cpu_start;

    let mut sweep = Vec::new();
    if let (Some(queries), Some(gt)) = (opts.get("queries"), opts.get("gt")) {
        let mut queries = read_f32(queries);
        prepare(metric, &mut queries, dim);
        let gt = read_u64(gt);
        let settings = opts.get("settings").copied().unwrap_or("10,20,40");
        for setting in settings.split(',').map(|s| s.parse::<usize>().expect("settings")) {
            let t = Instant::now();
            let mut hits = 0;
            for (q, truth) in queries.chunks_exact(dim).zip(gt.chunks_exact(K)) {
                hits += searcher(q, setting).iter().filter(|id| truth.contains(id)).count();
            }
            let nq = queries.len() / dim;
            sweep.push(format!(
                "{{\"setting\": {setting}, \"recall\": {:.4}, \"qps_1\": {:.1}}}",
                hits as f64 / (nq * K) as f64,
                nq as f64 / t.elapsed().as_secs_f64()
            ));
        }
    }
    let phases: Vec<String> = timer.phases.iter().map(|(k, v)| format!("\"{k}\": {v:.3}")).collect();
    println!(
        "{{\"kind\": \"{kind}\", \"rows\": {n}, \"build_s\": {build_s:.3}, \"build_cpu_s\": {build_cpu_s:.2}, \"phases\": {{{}}}, \"segment_bytes\": {bytes}, \"sweep\": [{}]}}",
        phases.join(", "),
        sweep.join(", ")
    );
}
