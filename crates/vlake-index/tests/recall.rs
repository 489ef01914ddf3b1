//! Recall@10 of each index against brute force on a Gaussian mixture, with stated tolerances.
#![allow(clippy::unwrap_used)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vlake_format::segment::{header_len, parse_header, PREFIX_LEN};
use vlake_index::hnsw::{Hnsw, HnswParams};
use vlake_index::ivf::{prepare, report, IvfModel, IvfParams};
use vlake_index::{Metric, TopK};

const DIM: usize = 32;
const N: usize = 4000;
const QUERIES: usize = 40;
const K: usize = 10;

/// Points around 20 fixed centres (queries and data share the centres).
fn mixture(n: usize, seed: u64) -> Vec<f32> {
    let centers: Vec<f32> = {
        let mut rng = StdRng::seed_from_u64(0);
        (0..20 * DIM).map(|_| rng.random_range(-5.0..5.0)).collect()
    };
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .flat_map(|_| {
            let c = rng.random_range(0..20);
            (0..DIM)
                .map(|j| centers[c * DIM + j] + rng.random_range(-1.0f32..1.0))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn exact(metric: Metric, data: &[f32], q: &[f32]) -> Vec<u64> {
    let mut top = TopK::new(K);
    let qn = vlake_index::distance::norm(q);
    for (i, v) in data.chunks_exact(DIM).enumerate() {
        top.push(metric.distance(q, qn, v), i as u64);
    }
    top.into_sorted().iter().map(|n| n.id).collect()
}

fn recall(metric: Metric, data: &[f32], queries: &[f32], search: impl Fn(&[f32]) -> Vec<u64>) -> f64 {
    let mut hits = 0;
    for q in queries.chunks_exact(DIM) {
        let truth = exact(metric, data, q);
        let got = search(q);
        hits += got.iter().filter(|id| truth.contains(id)).count();
    }
    hits as f64 / (QUERIES * K) as f64
}

#[test]
fn hnsw_recall() {
    for metric in [Metric::L2, Metric::Cosine] {
        let data = mixture(N, 1);
        let queries = mixture(QUERIES, 2);
        let mut prepared = data.clone();
        prepare(metric, &mut prepared, DIM);
        let ids: Vec<u64> = (0..N as u64).collect();
        let graph = Hnsw::build(metric, DIM, ids, prepared, &HnswParams::default()).unwrap();
        // Round trip through the segment format.
        let bytes = graph.write_segment().unwrap();
        let len = header_len(&bytes, "s").unwrap();
        let header = parse_header(&bytes[PREFIX_LEN..PREFIX_LEN + len], "s").unwrap();
        let graph = Hnsw::read_segment(&bytes, &header, "s").unwrap();
        let r = recall(metric, &data, &queries, |q| {
            let mut q = q.to_vec();
            prepare(metric, &mut q, DIM);
            graph
                .search(&q, K, 64, &|_| true)
                .into_sorted()
                .iter()
                .map(|n| n.id)
                .collect()
        });
        println!("{metric} HNSW recall@10 {r}");
        assert!(r >= 0.95, "{metric} HNSW recall@10 {r} < 0.95");
        // Filtered: only even ids.
        let mut q = queries[..DIM].to_vec();
        prepare(metric, &mut q, DIM);
        let got = graph.search(&q, K, 64, &|id| id % 2 == 0).into_sorted();
        assert_eq!(got.len(), K);
        assert!(got.iter().all(|n| n.id % 2 == 0));
    }
}

#[test]
fn ivf_flat_and_pq_recall() {
    for (metric, pq) in [
        (Metric::L2, None),
        (Metric::Cosine, None),
        (Metric::L2, Some(8)),
        (Metric::Cosine, Some(8)),
    ] {
        let data = mixture(N, 3);
        let queries = mixture(QUERIES, 4);
        let mut prepared = data.clone();
        prepare(metric, &mut prepared, DIM);
        let params = IvfParams {
            partitions: Some(32),
            pq_subvectors: pq,
            ..Default::default()
        };
        let model = IvfModel::fit(metric, DIM, &prepared, &params).unwrap();
        let ids: Vec<u64> = (0..N as u64).collect();
        let parts = model.partition(&ids, &prepared);
        assert_eq!(parts.iter().map(|p| p.ids.len()).sum::<usize>(), N);
        let r = recall(metric, &data, &queries, |q| {
            let mut q = q.to_vec();
            prepare(metric, &mut q, DIM);
            let probed: Vec<(usize, &_)> = model.probe(&q, 8).into_iter().map(|p| (p, &parts[p])).collect();
            let top = model.search(&q, &probed, K, 10, &|_| true);
            assert!(report(metric, 0.0).is_finite());
            top.into_sorted().iter().map(|n| n.id).collect()
        });
        println!("{metric} IVF (pq {pq:?}) recall@10 {r}");
        assert!(r >= 0.9, "{metric} IVF (pq {pq:?}) recall@10 {r} < 0.9");
    }
}

#[test]
fn duplicate_vectors_are_found() {
    // 300 identical vectors and 300 others. Duplicates compete for the same neighbour slots and
    // their lists fill with each other, closing the cluster off from the rest; the build must
    // still leave every node reachable, and a search must return duplicates only.
    let mut data = vec![1.0f32; 300 * DIM];
    data.extend(mixture(300, 9));
    let ids: Vec<u64> = (0..600).collect();
    let graph = Hnsw::build(Metric::L2, DIM, ids, data.clone(), &HnswParams::default()).unwrap();
    assert_eq!(unreachable_nodes(&graph, &data, DIM), Vec::<u64>::new());
    let found = graph.search(&[1.0; DIM], 50, 64, &|_| true).into_sorted();
    assert_eq!(found.len(), 50);
    assert!(found.iter().all(|n| n.id < 300 && n.distance == 0.0));
}

/// Whether a filtered search that allows only node `j` finds it: with `ef` above the node
/// count the search walks everything it can reach from the entry, so this asks whether `j` is
/// reachable.
fn unreachable_nodes(graph: &Hnsw, data: &[f32], dim: usize) -> Vec<u64> {
    (0..graph.len() as u64)
        .filter(|&j| {
            let q = &data[j as usize * dim..(j as usize + 1) * dim];
            graph
                .search(q, 1, graph.len() + 1, &|id| id == j)
                .into_sorted()
                .is_empty()
        })
        .collect()
}

#[test]
fn every_node_stays_reachable() {
    // Structured low-dimensional points (the SQL tests' table): the neighbour heuristic prunes
    // hard there, and a node whose every in-link was pruned could never be found.
    let n = 2000;
    let data: Vec<f32> = (0..n)
        .flat_map(|i| {
            let t = i as f32 * 0.37;
            [t.cos(), t.sin(), (i % 7) as f32 / 7.0, (i % 11) as f32 / 11.0]
        })
        .collect();
    for round in 0..5 {
        let ids: Vec<u64> = (0..n as u64).collect();
        let graph = Hnsw::build(Metric::L2, 4, ids, data.clone(), &HnswParams::default()).unwrap();
        let lost = unreachable_nodes(&graph, &data, 4);
        assert!(
            lost.is_empty(),
            "build {round}: {} unreachable nodes: {lost:?}",
            lost.len()
        );
    }
    let data = mixture(N, 3);
    let ids: Vec<u64> = (0..N as u64).collect();
    let graph = Hnsw::build(Metric::L2, DIM, ids, data.clone(), &HnswParams::default()).unwrap();
    assert_eq!(unreachable_nodes(&graph, &data, DIM), Vec::<u64>::new());
}
