//! Keeping the k nearest candidates.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A candidate: a distance and the row id it belongs to (`I` narrower where ids fit, such as
/// the `u32` node numbers of an HNSW search, so heaps move less memory).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Neighbor<I = u64> {
    /// Distance to the query (smaller is closer).
    pub distance: f32,
    /// Row id (or an index-internal id).
    pub id: I,
}

impl<I: Eq> Eq for Neighbor<I> {}

impl<I: Ord> Ord for Neighbor<I> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance.total_cmp(&other.distance).then(self.id.cmp(&other.id))
    }
}

impl<I: Ord> PartialOrd for Neighbor<I> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The k smallest neighbors seen so far.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Neighbor>,
}

impl TopK {
    /// The most entries reserved up front: `k` often comes from a user (`k * refine`), so a
    /// larger heap grows only as candidates actually arrive.
    const RESERVE_LIMIT: usize = 4096;

    /// Keeps at most `k` neighbors. Memory grows with the neighbors held, not with `k`.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            heap: BinaryHeap::with_capacity(k.saturating_add(1).min(Self::RESERVE_LIMIT)),
        }
    }

    /// The distance a candidate must beat to enter (infinity until k are held).
    #[inline]
    pub fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |n| n.distance)
        }
    }

    /// Offers a candidate.
    #[inline]
    pub fn push(&mut self, distance: f32, id: u64) {
        if self.k == 0 || distance.is_nan() {
            return;
        }
        if self.heap.len() < self.k {
            self.heap.push(Neighbor { distance, id });
        } else if distance < self.threshold() {
            self.heap.pop();
            self.heap.push(Neighbor { distance, id });
        }
    }

    /// Merges another set into this one.
    pub fn merge(&mut self, other: TopK) {
        for n in other.heap {
            self.push(n.distance, n.id);
        }
    }

    /// The most neighbors kept.
    pub fn capacity(&self) -> usize {
        self.k
    }

    /// Number held.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The neighbors, closest first.
    pub fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_smallest() {
        let mut t = TopK::new(3);
        for (d, id) in [(5.0, 1), (1.0, 2), (4.0, 3), (0.5, 4), (9.0, 5), (f32::NAN, 6)] {
            t.push(d, id);
        }
        let ids: Vec<u64> = t.into_sorted().iter().map(|n| n.id).collect();
        assert_eq!(ids, [4, 2, 3]);
    }

    #[test]
    fn a_huge_k_reserves_little() {
        let mut t = TopK::new(usize::MAX);
        assert!(t.heap.capacity() <= TopK::RESERVE_LIMIT);
        t.push(1.0, 7);
        assert_eq!(t.len(), 1);
        assert_eq!(t.capacity(), usize::MAX);
    }
}
