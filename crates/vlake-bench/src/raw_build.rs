//! `vlake-bench raw-build`: times one index build over a raw matrix file the way a table builds
//! it (prepare, train on the sample, partition, serialise the segment), then measures recall@10
//! of queries against given ground truth. Driven by `benchmarks/index_build.py`, which compares
//! it with FAISS.
//!
//! ```text
//! vlake-bench raw-build BASE DIM METRIC KIND [partitions=P] [subvectors=M] [m=16] \
//!     [ef_construction=100] [queries=FILE gt=FILE] [settings=5,10,20,40] [refine=10]
//! ```
//! BASE and `queries` hold little-endian f32 rows of DIM values; `gt` holds 10 little-endian
//! u64 row numbers per query. METRIC is `l2`, `cosine` or `dot`; KIND `ivf_pq`, `ivf_flat` or
//! `hnsw`. `settings` are nprobes (IVF) or ef (HNSW) values. Prints one JSON object.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::json;
use vlake_index::hnsw::{Hnsw, HnswParams};
use vlake_index::ivf::{prepare, IvfModel, IvfParams};
use vlake_table::{Error, Metric, Result};

const K: usize = 10;

/// `vlake-bench raw-build`.
#[derive(clap::Args, Debug)]
pub struct RawBuildArgs {
    /// Little-endian f32 rows of DIM values.
    base: String,
    /// Vector dimension.
    dim: usize,
    /// l2, cosine or dot.
    metric: String,
    /// ivf_pq, ivf_flat or hnsw.
    kind: String,
    /// Settings as key=value: partitions, subvectors, m, ef_construction, queries, gt,
    /// settings (comma-separated nprobes or ef values), refine.
    settings: Vec<String>,
}

/// The little-endian values of fixed-size `N`-byte words in a file.
fn read_words<const N: usize, T>(path: &str, from: fn([u8; N]) -> T) -> Result<Vec<T>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut word = [0u8; N];
            word.copy_from_slice(c);
            from(word)
        })
        .collect())
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

/// A number parsed from a setting's value.
fn number(key: &str, value: &str) -> Result<usize> {
    value
        .parse()
        .map_err(|_| Error::invalid(format!("{key}={value}: not a number")))
}

/// Builds the index, then sweeps the query settings; returns the report.
pub fn run(args: RawBuildArgs) -> Result<serde_json::Value> {
    let mut opts = HashMap::new();
    for setting in &args.settings {
        let (key, value) = setting
            .split_once('=')
            .ok_or_else(|| Error::invalid(format!("'{setting}' is not key=value")))?;
        opts.insert(key, value);
    }
    let num = |key: &str, default: usize| opts.get(key).map_or(Ok(default), |v| number(key, v));
    let (dim, kind) = (args.dim, args.kind.as_str());
    if dim == 0 {
        return Err(Error::invalid("DIM must be at least 1"));
    }
    let metric: Metric = args.metric.parse()?;

    let mut values = read_words(&args.base, f32::from_le_bytes)?;
    let n = values.len() / dim;
    let ids: Vec<u64> = (0..n as u64).collect();
    let mut timer = Timer::default();
    let cpu_start = cpu_seconds();
    prepare(metric, &mut values, dim);
    let (bytes, searcher): (usize, Searcher) = match kind {
        "hnsw" => {
            let params = HnswParams {
                m: num("m", 16)?,
                ef_construction: num("ef_construction", 100)?,
            };
            let graph = Hnsw::build(metric, dim, ids, values, &params)?;
            timer.lap("graph");
            let bytes = graph.write_segment()?.len();
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
                partitions: opts.get("partitions").map(|p| number("partitions", p)).transpose()?,
                pq_subvectors: if kind == "ivf_pq" {
                    Some(num("subvectors", dim / 8)?)
                } else {
                    None
                },
                ..IvfParams::default()
            };
            let model = IvfModel::fit(metric, dim, &values, &params)?;
            timer.lap("train");
            let parts = model.partition(&ids, &values);
            drop(values);
            timer.lap("partition");
            // Serialising consumes the partitions; search a copy (not timed).
            let kept = parts.clone();
            timer.restart();
            let bytes = model.write_segment(parts)?.len();
            timer.lap("serialise");
            let refine = num("refine", 10)?;
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
        other => return Err(Error::invalid(format!("unknown index kind '{other}'"))),
    };
    let build_s: f64 = timer.phases.iter().map(|p| p.1).sum();
    let build_cpu_s = cpu_seconds() - cpu_start;

    let mut sweep = Vec::new();
    if let (Some(queries), Some(gt)) = (opts.get("queries"), opts.get("gt")) {
        let mut queries = read_words(queries, f32::from_le_bytes)?;
        prepare(metric, &mut queries, dim);
        let gt = read_words(gt, u64::from_le_bytes)?;
        let settings = opts.get("settings").copied().unwrap_or("10,20,40");
        for setting in settings.split(',') {
            let setting = number("settings", setting)?;
            let t = Instant::now();
            let mut hits = 0;
            for (q, truth) in queries.chunks_exact(dim).zip(gt.chunks_exact(K)) {
                hits += searcher(q, setting).iter().filter(|id| truth.contains(id)).count();
            }
            let nq = queries.len() / dim;
            sweep.push(json!({
                "setting": setting,
                "recall": hits as f64 / (nq * K) as f64,
                "qps_1": nq as f64 / t.elapsed().as_secs_f64(),
            }));
        }
    }
    let phases: serde_json::Map<String, serde_json::Value> =
        timer.phases.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    Ok(json!({
        "kind": kind,
        "rows": n,
        "build_s": build_s,
        "build_cpu_s": build_cpu_s,
        "phases": phases,
        "segment_bytes": bytes,
        "sweep": sweep,
    }))
}
