//! HNSW (hierarchical navigable small world) graphs over prepared vectors.
//!
//! Layer 0 keeps `2 * m` neighbours per node in one flat array; upper layers keep `m`. Neighbours
//! are chosen with the paper's heuristic (a candidate is kept only if it is closer to the new
//! node than to every neighbour kept so far), which keeps the graph navigable on clustered data.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use vlake_format::{Error, Result};

use crate::ivf::space;
use crate::pq::Space;
use crate::segment::{f32_bytes, to_f32, to_u32, to_u64, u32_bytes, u64_bytes, SegmentHeader, SegmentWriter};
use crate::topk::{Neighbor, TopK};
use crate::Metric;

const EMPTY: u32 = u32::MAX;

/// Build parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Neighbours per node on upper layers (twice as many on layer 0).
    pub m: usize,
    /// Candidate list size while building.
    pub ef_construction: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 100,
        }
    }
}

/// What an HNSW segment's header records.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HnswMeta {
    /// User metric.
    pub metric: Metric,
    /// Dimension.
    pub dim: usize,
    /// Neighbours per upper-layer node.
    pub m: usize,
    /// Nodes.
    pub nodes: usize,
    /// Entry node.
    pub entry: u32,
    /// Top layer.
    pub max_level: u8,
}

/// An HNSW graph with its vectors.
#[derive(Clone, Debug)]
pub struct Hnsw {
    metric: Metric,
    space: Space,
    dim: usize,
    m: usize,
    vectors: Vec<f32>,
    ids: Vec<u64>,
    levels: Vec<u8>,
    layer0: Vec<u32>,
    /// Per node, its upper layers' neighbour slots (`m` per layer, layer 1 first).
    upper: Vec<Vec<u32>>,
    entry: u32,
    max_level: u8,
}

thread_local! {
    static VISITED: RefCell<(Vec<u32>, u32)> = const { RefCell::new((Vec::new(), 0)) };
}

/// Runs `f` with a cleared visited set for `n` nodes.
fn with_visited<T>(n: usize, f: impl FnOnce(&mut dyn FnMut(u32) -> bool) -> T) -> T {
    VISITED.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (marks, epoch) = &mut *guard;
        if marks.len() < n {
            marks.resize(n, 0);
        }
        *epoch = epoch.wrapping_add(1);
        if *epoch == 0 {
            marks.iter_mut().for_each(|m| *m = 0);
            *epoch = 1;
        }
        let e = *epoch;
        let mut first_visit = |i: u32| {
            let slot = &mut marks[i as usize];
            let new = *slot != e;
            *slot = e;
            new
        };
        f(&mut first_visit)
    })
}

impl Hnsw {
    /// Builds a graph over prepared vectors (see [`crate::ivf::prepare`]).
    pub fn build(metric: Metric, dim: usize, ids: Vec<u64>, vectors: Vec<f32>, params: &HnswParams) -> Result<Self> {
        if params.m < 2 || params.ef_construction == 0 {
            return Err(Error::invalid("HNSW needs m >= 2 and ef_construction >= 1"));
        }
        let n = ids.len();
        let m = params.m;
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let ml = 1.0 / (m as f64).ln();
        let levels: Vec<u8> = (0..n)
            .map(|_| ((-rng.random_range(f64::EPSILON..1.0).ln() * ml).floor() as usize).min(16) as u8)
            .collect();
        let upper = levels.iter().map(|l| vec![EMPTY; *l as usize * m]).collect();
        let mut g = Self {
            metric,
            space: space(metric),
            dim,
            m,
            vectors,
            ids,
            levels,
            layer0: vec![EMPTY; n * 2 * m],
            upper,
            entry: 0,
            max_level: 0,
        };
        if n == 0 {
            return Ok(g);
        }
        g.max_level = g.levels[0];
        for i in 1..n as u32 {
            g.insert(i, params.ef_construction);
        }
        Ok(g)
    }

    fn vector(&self, i: u32) -> &[f32] {
        &self.vectors[i as usize * self.dim..(i as usize + 1) * self.dim]
    }

    fn distance(&self, q: &[f32], i: u32) -> f32 {
        self.space.distance(q, self.vector(i))
    }

    fn capacity(&self, layer: u8) -> usize {
        if layer == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    fn neighbors(&self, i: u32, layer: u8) -> &[u32] {
        let slots = if layer == 0 {
            &self.layer0[i as usize * 2 * self.m..(i as usize + 1) * 2 * self.m]
        } else {
            &self.upper[i as usize][(layer as usize - 1) * self.m..layer as usize * self.m]
        };
        let len = slots.iter().position(|n| *n == EMPTY).unwrap_or(slots.len());
        &slots[..len]
    }

    fn set_neighbors(&mut self, i: u32, layer: u8, list: &[u32]) {
        let cap = self.capacity(layer);
        let slots = if layer == 0 {
            &mut self.layer0[i as usize * cap..(i as usize + 1) * cap]
        } else {
            &mut self.upper[i as usize][(layer as usize - 1) * cap..layer as usize * cap]
        };
        slots.fill(EMPTY);
        slots[..list.len()].copy_from_slice(list);
    }

    /// Greedy walk to the closest node on one layer.
    fn greedy(&self, q: &[f32], mut cur: u32, layer: u8) -> u32 {
        let mut best = self.distance(q, cur);
        loop {
            let mut moved = false;
            for &nb in self.neighbors(cur, layer) {
                let d = self.distance(q, nb);
                if d < best {
                    best = d;
                    cur = nb;
                    moved = true;
                }
            }
            if !moved {
                return cur;
            }
        }
    }

    /// The `ef` closest nodes found from `entry` on `layer`, closest first. Only nodes `allow`
    /// accepts enter the result, but the walk goes through all of them.
    fn search_layer(&self, q: &[f32], entry: u32, ef: usize, layer: u8, allow: &dyn Fn(u32) -> bool) -> Vec<Neighbor> {
        with_visited(self.ids.len(), |first_visit| {
            let mut candidates: BinaryHeap<Reverse<Neighbor>> = BinaryHeap::new();
            let mut results: BinaryHeap<Neighbor> = BinaryHeap::new();
            let d = self.distance(q, entry);
            first_visit(entry);
            candidates.push(Reverse(Neighbor {
                distance: d,
                id: entry as u64,
            }));
            if allow(entry) {
                results.push(Neighbor {
                    distance: d,
                    id: entry as u64,
                });
            }
            while let Some(Reverse(c)) = candidates.pop() {
                let worst = if results.len() >= ef {
                    results.peek().map_or(f32::INFINITY, |r| r.distance)
                } else {
                    f32::INFINITY
                };
                if c.distance > worst {
                    break;
                }
                let neighbors = self.neighbors(c.id as u32, layer);
                for &nb in neighbors {
                    crate::distance::prefetch(self.vector(nb));
                }
                for &nb in neighbors {
                    if !first_visit(nb) {
                        continue;
                    }
                    let d = self.distance(q, nb);
                    let worst = if results.len() >= ef {
                        results.peek().map_or(f32::INFINITY, |r| r.distance)
                    } else {
                        f32::INFINITY
                    };
                    if d < worst {
                        candidates.push(Reverse(Neighbor {
                            distance: d,
                            id: nb as u64,
                        }));
                        if allow(nb) {
                            results.push(Neighbor {
                                distance: d,
                                id: nb as u64,
                            });
                            if results.len() > ef {
                                results.pop();
                            }
                        }
                    }
                }
            }
            results.into_sorted_vec()
        })
    }

    /// The paper's neighbour-selection heuristic over candidates sorted closest first.
    fn select(&self, candidates: &[Neighbor], limit: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(limit);
        for c in candidates {
            if kept.len() >= limit {
                break;
            }
            let cv = self.vector(c.id as u32);
            if kept
                .iter()
                .all(|&k| self.space.distance(cv, self.vector(k)) > c.distance)
            {
                kept.push(c.id as u32);
            }
        }
        kept
    }

    fn insert(&mut self, i: u32, ef: usize) {
        let level = self.levels[i as usize];
        let q = self.vector(i).to_vec();
        let mut ep = self.entry;
        for layer in (level + 1..=self.max_level).rev() {
            ep = self.greedy(&q, ep, layer);
        }
        for layer in (0..=level.min(self.max_level)).rev() {
            let found = self.search_layer(&q, ep, ef, layer, &|_| true);
            let chosen = self.select(&found, self.m);
            self.set_neighbors(i, layer, &chosen);
            for &nb in &chosen {
                let mut list = self.neighbors(nb, layer).to_vec();
                if list.len() < self.capacity(layer) {
                    list.push(i);
                } else {
                    let nv = self.vector(nb).to_vec();
                    let mut all: Vec<Neighbor> = list
                        .iter()
                        .chain([&i])
                        .map(|&x| Neighbor {
                            distance: self.distance(&nv, x),
                            id: x as u64,
                        })
                        .collect();
                    all.sort();
                    list = self.select(&all, self.capacity(layer));
                }
                self.set_neighbors(nb, layer, &list);
            }
            if let Some(first) = found.first() {
                ep = first.id as u32;
            }
        }
        if level > self.max_level {
            self.max_level = level;
            self.entry = i;
        }
    }

    /// The `k` nearest allowed rows to a prepared query, as (inner distance, row id).
    pub fn search(&self, q: &[f32], k: usize, ef: usize, allow: &dyn Fn(u64) -> bool) -> TopK {
        let mut top = TopK::new(k);
        if self.ids.is_empty() {
            return top;
        }
        let mut ep = self.entry;
        for layer in (1..=self.max_level).rev() {
            ep = self.greedy(q, ep, layer);
        }
        for n in self.search_layer(q, ep, ef.max(k), 0, &|i| allow(self.ids[i as usize])) {
            top.push(n.distance, self.ids[n.id as usize]);
        }
        top
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether the graph is empty.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The user metric.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// The dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Serialises the graph as a segment file.
    pub fn write_segment(&self) -> Result<Vec<u8>> {
        let mut w = SegmentWriter::default();
        w.blob("vectors", f32_bytes(&self.vectors));
        w.blob("ids", u64_bytes(&self.ids));
        w.blob("levels", self.levels.clone());
        w.blob("layer0", u32_bytes(&self.layer0));
        w.blob("upper", u32_bytes(&self.upper.concat()));
        let meta = HnswMeta {
            metric: self.metric,
            dim: self.dim,
            m: self.m,
            nodes: self.ids.len(),
            entry: self.entry,
            max_level: self.max_level,
        };
        w.finish(
            "hnsw",
            serde_json::to_value(&meta).map_err(|e| Error::Internal(e.to_string()))?,
        )
    }

    /// Loads a graph from a whole segment file.
    pub fn read_segment(bytes: &[u8], header: &SegmentHeader, path: &str) -> Result<Self> {
        if header.kind != "hnsw" {
            return Err(Error::corrupt(
                path,
                format!("expected an HNSW segment, found '{}'", header.kind),
            ));
        }
        let meta: HnswMeta = serde_json::from_value(header.params.clone())
            .map_err(|e| Error::corrupt(path, format!("bad HNSW header: {e}")))?;
        let blob = |name: &str| -> Result<&[u8]> {
            let r = header.blob(name, path)?;
            bytes
                .get(r.start as usize..r.end as usize)
                .ok_or_else(|| Error::corrupt(path, format!("blob '{name}' runs past the end of the file")))
        };
        let vectors = to_f32(blob("vectors")?, path, "vectors")?;
        let ids = to_u64(blob("ids")?, path, "ids")?;
        let levels = blob("levels")?.to_vec();
        let layer0 = to_u32(blob("layer0")?, path, "layer0")?;
        let flat_upper = to_u32(blob("upper")?, path, "upper")?;
        let n = meta.nodes;
        let m = meta.m;
        let upper_len: usize = levels.iter().map(|l| *l as usize * m).sum();
        let bad_link = layer0
            .iter()
            .chain(&flat_upper)
            .any(|x| *x != EMPTY && *x as usize >= n);
        if ids.len() != n
            || vectors.len() != n * meta.dim
            || levels.len() != n
            || layer0.len() != n * 2 * m
            || flat_upper.len() != upper_len
            || bad_link
            || (n > 0 && meta.entry as usize >= n)
        {
            return Err(Error::corrupt(path, "HNSW segment sizes or links are inconsistent"));
        }
        let mut upper = Vec::with_capacity(n);
        let mut offset = 0;
        for l in &levels {
            let len = *l as usize * m;
            upper.push(flat_upper[offset..offset + len].to_vec());
            offset += len;
        }
        // Every upper-layer link must point at a node that lives on that layer, and the entry
        // node must be on the top layer: a search then never leaves the graph.
        let bad_level = (n > 0 && levels[meta.entry as usize] != meta.max_level)
            || levels.iter().any(|l| *l > meta.max_level)
            || upper.iter().any(|slots| {
                slots.chunks_exact(m.max(1)).enumerate().any(|(layer, links)| {
                    links
                        .iter()
                        .any(|x| *x != EMPTY && (levels[*x as usize] as usize) < layer + 1)
                })
            });
        if m < 2 || bad_level {
            return Err(Error::corrupt(path, "HNSW segment levels are inconsistent"));
        }
        Ok(Self {
            metric: meta.metric,
            space: space(meta.metric),
            dim: meta.dim,
            m,
            vectors,
            ids,
            levels,
            layer0,
            upper,
            entry: meta.entry,
            max_level: meta.max_level,
        })
    }
}
