//! HNSW (hierarchical navigable small world) graphs over prepared vectors.
//!
//! Layer 0 keeps `2 * m` neighbours per node in one flat array; upper layers keep `m`. Neighbours
//! are chosen with the paper's heuristic (a candidate is kept only if it is closer to the new
//! node than to every neighbour kept so far), which keeps the graph navigable on clustered data.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Mutex, MutexGuard, RwLock};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use vlake_format::segment::{f32_bytes, to_f32, to_u32, to_u64, u32_bytes, u64_bytes, SegmentHeader, SegmentWriter};
use vlake_format::{Error, Result};

use crate::ivf::space;
use crate::pq::Space;
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

/// Read access to a graph under construction or finished.
trait Graph {
    fn space(&self) -> Space;
    /// All vectors, row-major, and their dimension.
    fn vectors(&self) -> (&[f32], usize);
    /// Replaces `out` with the neighbours of `i` on `layer`.
    fn load_neighbors(&self, i: u32, layer: u8, out: &mut Vec<u32>);
    /// Starts loading the neighbour list of `i` on `layer` into the cache.
    fn prefetch_neighbors(&self, i: u32, layer: u8);

    fn vector(&self, i: u32) -> &[f32] {
        let (all, dim) = self.vectors();
        &all[i as usize * dim..(i as usize + 1) * dim]
    }

    fn distance(&self, q: &[f32], i: u32) -> f32 {
        self.space().distance(q, self.vector(i))
    }
}

impl Graph for Hnsw {
    fn space(&self) -> Space {
        self.space
    }

    fn vectors(&self) -> (&[f32], usize) {
        (&self.vectors, self.dim)
    }

    fn load_neighbors(&self, i: u32, layer: u8, out: &mut Vec<u32>) {
        out.clear();
        out.extend_from_slice(self.neighbors(i, layer));
    }

    fn prefetch_neighbors(&self, i: u32, layer: u8) {
        if layer == 0 {
            crate::distance::prefetch(&self.layer0[i as usize * 2 * self.m..]);
        }
    }
}

/// A graph being built by many threads. Each neighbour list is a count followed by its slots,
/// in flat atomic arrays (no allocation per node). A writer holds the lock of the node's stripe;
/// readers take no lock and see a list before or after a change or, while it is rewritten, a
/// mix of old and new neighbours: every slot below a published count holds a real node (a slot
/// is written before the count that covers it is released), which is all a search needs.
struct Builder<'a> {
    space: Space,
    dim: usize,
    m: usize,
    vectors: &'a [f32],
    levels: &'a [u8],
    /// Per node: a count and `2 m` slots.
    layer0: Vec<AtomicU32>,
    /// Per node from `upper_start[i]`: for each of its layers 1..=level, a count and `m` slots.
    upper: Vec<AtomicU32>,
    upper_start: Vec<usize>,
    /// Node `i`'s lists are written under `stripes[i % stripes.len()]`.
    stripes: Vec<Mutex<()>>,
    /// Entry node and top layer.
    top: RwLock<(u32, u8)>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

/// The neighbours held in a list's slots (count first).
fn load_slots(slots: &[AtomicU32], out: &mut Vec<u32>) {
    out.clear();
    let n = (slots[0].load(Acquire) as usize).min(slots.len() - 1);
    out.extend(slots[1..=n].iter().map(|s| s.load(Relaxed)));
}

/// Replaces a list (its stripe lock held): the slots, then the count.
fn store_slots(slots: &[AtomicU32], list: &[u32]) {
    let n = list.len().min(slots.len() - 1);
    for (slot, v) in slots[1..=n].iter().zip(list) {
        slot.store(*v, Relaxed);
    }
    slots[0].store(n as u32, Release);
}

impl Graph for Builder<'_> {
    fn space(&self) -> Space {
        self.space
    }

    fn vectors(&self) -> (&[f32], usize) {
        (self.vectors, self.dim)
    }

    fn load_neighbors(&self, i: u32, layer: u8, out: &mut Vec<u32>) {
        load_slots(self.slots(i, layer), out);
    }

    fn prefetch_neighbors(&self, i: u32, layer: u8) {
        crate::distance::prefetch(self.slots(i, layer));
    }
}

impl<'a> Builder<'a> {
    fn new(space: Space, dim: usize, m: usize, vectors: &'a [f32], levels: &'a [u8]) -> Self {
        let n = levels.len();
        let slots = |count: usize| (0..count).map(|_| AtomicU32::new(0)).collect::<Vec<_>>();
        let mut upper_start = Vec::with_capacity(n);
        let mut upper_len = 0;
        for l in levels {
            upper_start.push(upper_len);
            upper_len += *l as usize * (m + 1);
        }
        Self {
            space,
            dim,
            m,
            vectors,
            levels,
            layer0: slots(n * (2 * m + 1)),
            upper: slots(upper_len),
            upper_start,
            stripes: (0..n.clamp(1, 1 << 16)).map(|_| Mutex::new(())).collect(),
            top: RwLock::new((0, levels.first().copied().unwrap_or(0))),
        }
    }

    fn slots(&self, i: u32, layer: u8) -> &[AtomicU32] {
        let i = i as usize;
        if layer == 0 {
            let w = 2 * self.m + 1;
            &self.layer0[i * w..(i + 1) * w]
        } else {
            let w = self.m + 1;
            let start = self.upper_start[i] + (layer as usize - 1) * w;
            &self.upper[start..start + w]
        }
    }

    fn lock(&self, i: u32) -> MutexGuard<'_, ()> {
        self.stripes[i as usize % self.stripes.len()]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn capacity(&self, layer: u8) -> usize {
        if layer == 0 {
            2 * self.m
        } else {
            self.m
        }
    }

    /// The finished lists: layer 0 as `2 m` slots per node and each node's upper layers as `m`
    /// slots per layer, unused slots [`EMPTY`].
    fn into_lists(self) -> (Vec<u32>, Vec<Vec<u32>>) {
        let (n, m) = (self.levels.len(), self.m);
        let mut list = Vec::with_capacity(2 * m);
        let mut layer0 = vec![EMPTY; n * 2 * m];
        for (i, out) in layer0.chunks_exact_mut(2 * m).enumerate() {
            load_slots(self.slots(i as u32, 0), &mut list);
            out[..list.len()].copy_from_slice(&list);
        }
        let upper = (0..n)
            .map(|i| {
                let mut slots = vec![EMPTY; self.levels[i] as usize * m];
                for (l, out) in slots.chunks_exact_mut(m).enumerate() {
                    load_slots(self.slots(i as u32, l as u8 + 1), &mut list);
                    out[..list.len()].copy_from_slice(&list);
                }
                slots
            })
            .collect();
        (layer0, upper)
    }

    fn insert(&self, i: u32, ef: usize) {
        let level = self.levels[i as usize];
        // A node above the current top layer holds the top lock for its whole insertion, so
        // that the entry point moves only once it is linked.
        let mut top_guard = None;
        let (entry, max_level) = *read(&self.top);
        let (mut ep, max_level) = if level > max_level {
            let g = write(&self.top);
            let current = *g;
            // Another node may have raised the top while we waited for the lock.
            if level > current.1 {
                top_guard = Some(g);
            }
            current
        } else {
            (entry, max_level)
        };
        let q = self.vector(i);
        for layer in (level + 1..=max_level).rev() {
            ep = greedy(self, q, ep, layer);
        }
        let mut all: Vec<Neighbor> = Vec::with_capacity(2 * self.m + 1);
        let mut list: Vec<u32> = Vec::with_capacity(2 * self.m);
        for layer in (0..=level.min(max_level)).rev() {
            let found = search_layer(self, q, ep, ef, layer, &|_| true);
            let chosen = select(self, &found, self.m);
            {
                let _guard = self.lock(i);
                let slots = self.slots(i, layer);
                // Nodes that reached i on this layer before its list was written (from i's
                // links on the layer above) have linked themselves here already: keep them, or
                // they would lose their only way in.
                load_slots(slots, &mut list);
                list.retain(|x| !chosen.contains(x));
                if chosen.len() + list.len() <= self.capacity(layer) {
                    list.extend_from_slice(&chosen);
                    store_slots(slots, &list);
                } else {
                    all.clear();
                    all.extend(chosen.iter().chain(&list).map(|&x| Neighbor {
                        distance: self.distance(q, x),
                        id: x as u64,
                    }));
                    all.sort();
                    store_slots(slots, &select(self, &all, self.capacity(layer)));
                }
            }
            for &nb in &chosen {
                let _guard = self.lock(nb);
                let slots = self.slots(nb, layer);
                let len = slots[0].load(Relaxed) as usize;
                if len < self.capacity(layer) {
                    slots[len + 1].store(i, Relaxed);
                    slots[0].store(len as u32 + 1, Release);
                } else {
                    load_slots(slots, &mut list);
                    let nv = self.vector(nb);
                    all.clear();
                    all.extend(list.iter().chain([&i]).map(|&x| Neighbor {
                        distance: self.distance(nv, x),
                        id: x as u64,
                    }));
                    all.sort();
                    store_slots(slots, &select(self, &all, self.capacity(layer)));
                }
            }
            if let Some(first) = found.first() {
                ep = first.id as u32;
            }
        }
        if let Some(mut g) = top_guard {
            *g = (i, level);
        }
    }
}

/// Greedy walk to the closest node on one layer.
fn greedy(g: &impl Graph, q: &[f32], mut cur: u32, layer: u8) -> u32 {
    let mut best = g.distance(q, cur);
    let mut buf = Vec::new();
    loop {
        let mut moved = false;
        g.load_neighbors(cur, layer, &mut buf);
        for &nb in &buf {
            let d = g.distance(q, nb);
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
fn search_layer(
    g: &impl Graph,
    q: &[f32],
    entry: u32,
    ef: usize,
    layer: u8,
    allow: &dyn Fn(u32) -> bool,
) -> Vec<Neighbor> {
    SCRATCH.with(|cell| {
        let mut guard = cell.borrow_mut();
        let Scratch {
            marks,
            epoch,
            candidates,
            results,
            buf,
        } = &mut *guard;
        // A fresh visited set: a new epoch, the marks wiped every 255 uses.
        *epoch = epoch.wrapping_add(1);
        if *epoch == 0 {
            marks.iter_mut().for_each(|m| *m = 0);
            *epoch = 1;
        }
        let e = *epoch;
        let mut first_visit = |i: u32| {
            if i as usize >= marks.len() {
                marks.resize((i as usize + 1).next_power_of_two(), 0);
            }
            let new = marks[i as usize] != e;
            marks[i as usize] = e;
            new
        };
        candidates.clear();
        results.clear();
        let worst = |results: &BinaryHeap<Neighbor<u32>>| {
            if results.len() >= ef {
                results.peek().map_or(f32::INFINITY, |r| r.distance)
            } else {
                f32::INFINITY
            }
        };
        // A node enters the candidates, and the results when allowed (keeping the best ef).
        let offer = |candidates: &mut BinaryHeap<Reverse<Neighbor<u32>>>,
                     results: &mut BinaryHeap<Neighbor<u32>>,
                     distance,
                     id: u32| {
            let n = Neighbor { distance, id };
            candidates.push(Reverse(n));
            if allow(id) {
                if results.len() < ef {
                    results.push(n);
                } else if let Some(mut far) = results.peek_mut() {
                    // Full: the new node takes the farthest one's place (one sift).
                    if n < *far {
                        *far = n;
                    }
                }
            }
        };
        first_visit(entry);
        offer(candidates, results, g.distance(q, entry), entry);
        while let Some(Reverse(c)) = candidates.pop() {
            if c.distance > worst(results) {
                break;
            }
            // The next candidate's list is likely needed next: start loading it.
            if let Some(Reverse(next)) = candidates.peek() {
                g.prefetch_neighbors(next.id, layer);
            }
            g.load_neighbors(c.id, layer, buf);
            // Keep the unvisited neighbours and start loading their vectors before computing.
            buf.retain(|&nb| first_visit(nb));
            // Only each vector's first cache line: the hardware prefetcher follows on with the
            // rest, and prefetching whole vectors fills the line buffers and stalls.
            for &nb in buf.iter() {
                crate::distance::prefetch(g.vector(nb));
            }
            for &nb in buf.iter() {
                let d = g.distance(q, nb);
                if d < worst(results) {
                    offer(candidates, results, d, nb);
                }
            }
        }
        let mut found: Vec<Neighbor> = results
            .drain()
            .map(|c| Neighbor {
                distance: c.distance,
                id: c.id as u64,
            })
            .collect();
        found.sort();
        found
    })
}

/// The paper's neighbour-selection heuristic over candidates sorted closest first.
fn select(g: &impl Graph, candidates: &[Neighbor], limit: usize) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(limit);
    for c in candidates {
        if kept.len() >= limit {
            break;
        }
        let cv = g.vector(c.id as u32);
        // Keep c unless a kept neighbour is strictly closer to it than the new node is (ties
        // kept, so duplicate vectors stay connected).
        if kept.iter().all(|&k| g.space().distance(cv, g.vector(k)) >= c.distance) {
            kept.push(c.id as u32);
        }
    }
    kept
}

/// A thread's reusable search state.
#[derive(Default)]
struct Scratch {
    /// Visited marks, one byte per node: `epoch` marks this search's visits, so that large
    /// graphs keep the set in cache and it is cleared only every 255 searches.
    marks: Vec<u8>,
    epoch: u8,
    /// Node numbers, not row ids: 8-byte entries keep the heaps small.
    candidates: BinaryHeap<Reverse<Neighbor<u32>>>,
    results: BinaryHeap<Neighbor<u32>>,
    buf: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Hnsw {
    /// Builds a graph over prepared vectors (see [`crate::ivf::prepare`]), inserting nodes from
    /// all threads of the rayon pool.
    pub fn build(metric: Metric, dim: usize, ids: Vec<u64>, vectors: Vec<f32>, params: &HnswParams) -> Result<Self> {
        if !(2..=1024).contains(&params.m) || params.ef_construction == 0 {
            return Err(Error::invalid("HNSW needs 2 <= m <= 1024 and ef_construction >= 1"));
        }
        let n = ids.len();
        let m = params.m;
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let ml = 1.0 / (m as f64).ln();
        let levels: Vec<u8> = (0..n)
            .map(|_| ((-rng.random_range(f64::EPSILON..1.0).ln() * ml).floor() as usize).min(16) as u8)
            .collect();
        let builder = Builder::new(space(metric), dim, m, &vectors, &levels);
        (1..n as u32)
            .into_par_iter()
            .for_each(|i| builder.insert(i, params.ef_construction));
        let (entry, max_level) = *read(&builder.top);
        let (layer0, upper) = builder.into_lists();
        let mut graph = Self {
            metric,
            space: space(metric),
            dim,
            m,
            vectors,
            ids,
            levels,
            layer0,
            upper,
            entry,
            max_level,
        };
        graph.link_unreachable(params.ef_construction);
        Ok(graph)
    }

    /// Which nodes a walk over layer 0 from the entry reaches.
    fn reachable(&self) -> Vec<bool> {
        let mut reached = vec![false; self.len()];
        if let Some(r) = reached.get_mut(self.entry as usize) {
            *r = true;
        }
        self.mark_reachable(self.entry, &mut reached);
        reached
    }

    /// Marks what layer 0 reaches from `start` (itself marked), stopping at marked nodes.
    fn mark_reachable(&self, start: u32, reached: &mut [bool]) {
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            for &nb in self.neighbors(i, 0) {
                if !reached[nb as usize] {
                    reached[nb as usize] = true;
                    stack.push(nb);
                }
            }
        }
    }

    /// Gives every node a way in on layer 0. Pruning a full list (and, in a parallel build,
    /// threads linking in a different order) can drop a node's last in-link, and a cluster whose
    /// lists all point inside it can close off the rest; a search could then never return those
    /// nodes. Each node a walk from the entry misses is linked from one of its `m` nearest
    /// reachable nodes: the first with a free slot, or else the first that holds a link whose
    /// target has another way in (the farthest such link makes room).
    fn link_unreachable(&mut self, ef: usize) {
        for _round in 0..4 {
            let mut reached = self.reachable();
            let lost: Vec<u32> = (0..self.len() as u32).filter(|&i| !reached[i as usize]).collect();
            if lost.is_empty() {
                return;
            }
            let mut in_links = vec![0u32; self.len()];
            for &x in self.layer0.iter().filter(|&&x| x != EMPTY) {
                in_links[x as usize] += 1;
            }
            for u in lost {
                if reached[u as usize] {
                    continue;
                }
                let q = self.vector(u);
                let found = search_layer(&*self, q, self.descend(q), ef.max(self.m), 0, &|i| reached[i as usize]);
                let slot = found
                    .iter()
                    .take(self.m)
                    .find_map(|c| self.free_slot(c.id as u32, &in_links));
                let Some(slot) = slot else {
                    continue;
                };
                let old = std::mem::replace(&mut self.layer0[slot], u);
                if old != EMPTY {
                    in_links[old as usize] -= 1;
                }
                in_links[u as usize] += 1;
                reached[u as usize] = true;
                self.mark_reachable(u, &mut reached);
            }
        }
    }

    /// A layer-0 slot of `host` that a new link may take (as an index into the flat lists): its
    /// first empty one, or the one holding its farthest neighbour that has another in-link.
    fn free_slot(&self, host: u32, in_links: &[u32]) -> Option<usize> {
        let start = host as usize * 2 * self.m;
        let links = self.neighbors(host, 0);
        if links.len() < 2 * self.m {
            return Some(start + links.len());
        }
        let hv = self.vector(host);
        (0..links.len())
            .filter(|&s| in_links[links[s] as usize] > 1)
            .map(|s| (self.space.distance(hv, self.vector(links[s])), s))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, s)| start + s)
    }

    /// The greedy walk down the upper layers to layer 0's starting node for `q`.
    fn descend(&self, q: &[f32]) -> u32 {
        let mut ep = self.entry;
        for layer in (1..=self.max_level).rev() {
            ep = greedy(self, q, ep, layer);
        }
        ep
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

    /// The `k` nearest allowed rows to a prepared query, as (inner distance, row id).
    pub fn search(&self, q: &[f32], k: usize, ef: usize, allow: &dyn Fn(u64) -> bool) -> TopK {
        let mut top = TopK::new(k);
        if self.ids.is_empty() {
            return top;
        }
        for n in search_layer(self, q, self.descend(q), ef.max(k), 0, &|i| allow(self.ids[i as usize])) {
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
        if !(2..=1024).contains(&m) || meta.dim == 0 || n > u32::MAX as usize - 1 {
            return Err(Error::corrupt(
                path,
                format!("HNSW parameters m={m}, dim={}, nodes={n} are out of range", meta.dim),
            ));
        }
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
