//! BM25 search over several segments as if they were one index (format-spec/fts.md#search).
//!
//! Each [`Part`] is a segment with the documents that are live in the version searched. The
//! statistics BM25 uses (the document count `N`, the average length, each term's document
//! frequency) count live documents of every part, so a search over an index's segments plus
//! segments made at query time for unindexed data ranks exactly like one index built over all
//! live rows.

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use fst::{Automaton, IntoStreamer, Streamer};
use levenshtein_automata::{Distance, LevenshteinAutomatonBuilder};

use crate::query::{Bool, Plan, MAX_FUZZY_DISTANCE};
use crate::segment::TextSegment;

/// BM25 parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bm25 {
    /// Term-frequency saturation (default 1.2).
    pub k1: f64,
    /// Length normalisation (default 0.75).
    pub b: f64,
}

impl Default for Bm25 {
    fn default() -> Self {
        Self { k1: 1.2, b: 0.75 }
    }
}

/// A segment and which of its documents are live.
#[derive(Clone, Debug)]
pub struct Part {
    segment: Arc<TextSegment>,
    /// Per document, whether it is live; `None` when all are.
    live: Option<Vec<bool>>,
    docs: u64,
    tokens: u64,
}

impl Part {
    /// `segment` with the documents whose row id `is_live` accepts.
    pub fn new(segment: Arc<TextSegment>, is_live: impl Fn(u64) -> bool) -> Self {
        let live: Vec<bool> = segment.row_ids().iter().map(|id| is_live(*id)).collect();
        let (mut docs, mut tokens) = (0u64, 0u64);
        for (alive, len) in live.iter().zip(segment.lengths()) {
            if *alive {
                docs += 1;
                tokens += *len as u64;
            }
        }
        let all = docs as usize == live.len();
        Self {
            segment,
            live: (!all).then_some(live),
            docs,
            tokens,
        }
    }

    fn is_live(&self, doc: u32) -> bool {
        self.live.as_ref().is_none_or(|l| l[doc as usize])
    }

    fn doc_freq(&self, term: &str) -> u64 {
        let range = self.segment.postings(term);
        match &self.live {
            None => range.len() as u64,
            Some(_) => range.filter(|p| self.is_live(self.segment.posting(*p).0)).count() as u64,
        }
    }
}

/// A query with its expansions chosen and its terms' inverse document frequencies known.
#[derive(Clone, Debug, PartialEq)]
pub enum Resolved {
    /// Matches nothing.
    Nothing,
    /// One term.
    Term {
        /// The term.
        term: String,
        /// Its IDF.
        idf: f64,
    },
    /// Terms at relative positions; scored as one term whose IDF is the sum of theirs.
    Phrase {
        /// Terms and relative positions.
        terms: Vec<(String, u32)>,
        /// The sum of their IDFs.
        idf: f64,
    },
    /// Any of these (an expansion); a document scores the best of those it matches.
    Max(Vec<Resolved>),
    /// Boolean combination.
    Bool(Bool<Resolved>),
}

impl Resolved {
    /// The terms of the clauses that can make a document match (not the excluded ones), for
    /// highlighting.
    pub fn positive_terms(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_terms(&mut out);
        out
    }

    fn collect_terms(&self, out: &mut BTreeSet<String>) {
        match self {
            Resolved::Nothing => {}
            Resolved::Term { term, .. } => {
                out.insert(term.clone());
            }
            Resolved::Phrase { terms, .. } => out.extend(terms.iter().map(|(t, _)| t.clone())),
            Resolved::Max(all) => all.iter().for_each(|r| r.collect_terms(out)),
            Resolved::Bool(b) => b.must.iter().chain(&b.should).for_each(|r| r.collect_terms(out)),
        }
    }
}

/// A search hit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hit {
    /// The row id.
    pub row_id: u64,
    /// Its BM25 score.
    pub score: f32,
}

/// Scores of matching documents, sorted by key (`part << 32 | document`).
type Scores = Vec<(u64, f64)>;

/// Searches a set of parts with shared statistics.
#[derive(Clone, Debug)]
pub struct Searcher {
    parts: Vec<Part>,
    docs: u64,
    tokens: u64,
}

impl Searcher {
    /// A searcher over `parts`.
    pub fn new(parts: Vec<Part>) -> Self {
        let docs = parts.iter().map(|p| p.docs).sum();
        let tokens = parts.iter().map(|p| p.tokens).sum();
        Self { parts, docs, tokens }
    }

    /// Live documents (`N`).
    pub fn num_docs(&self) -> u64 {
        self.docs
    }

    /// Average live document length (1 when there are no documents).
    pub fn avg_len(&self) -> f64 {
        if self.docs == 0 {
            1.0
        } else {
            self.tokens as f64 / self.docs as f64
        }
    }

    /// Live documents holding `term`.
    pub fn doc_freq(&self, term: &str) -> u64 {
        self.parts.iter().map(|p| p.doc_freq(term)).sum()
    }

    /// BM25's inverse document frequency, `ln(1 + (N − df + 0.5) / (df + 0.5))`.
    pub fn idf(&self, df: u64) -> f64 {
        let (n, df) = (self.docs as f64, df as f64);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    fn term(&self, term: &str) -> Resolved {
        match self.doc_freq(term) {
            0 => Resolved::Nothing,
            df => Resolved::Term {
                term: term.to_string(),
                idf: self.idf(df),
            },
        }
    }

    fn phrase(&self, terms: Vec<(String, u32)>) -> Resolved {
        let mut idf = 0.0;
        for (t, _) in &terms {
            match self.doc_freq(t) {
                0 => return Resolved::Nothing,
                df => idf += self.idf(df),
            }
        }
        Resolved::Phrase { terms, idf }
    }

    /// Terms of any part that `automaton` accepts, in byte order.
    fn matching_terms(&self, automaton: impl Automaton + Clone) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for part in &self.parts {
            let mut stream = part.segment.terms().search(automaton.clone()).into_stream();
            while let Some((key, _)) = stream.next() {
                out.insert(String::from_utf8_lossy(key).into_owned());
            }
        }
        out
    }

    /// Chooses expansions and computes IDFs. Prefixes expand to their first `max_expansions`
    /// live terms in byte order, fuzzy terms to the nearest ones (by distance, then byte
    /// order).
    pub fn resolve(&self, plan: &Plan, max_expansions: usize) -> Resolved {
        let any = |found: Vec<Resolved>| match found.len() {
            0 => Resolved::Nothing,
            1 => found.into_iter().next().unwrap_or(Resolved::Nothing),
            _ => Resolved::Max(found),
        };
        let live = |terms: Vec<String>| -> Vec<String> {
            terms
                .into_iter()
                .filter(|t| self.doc_freq(t) > 0)
                .take(max_expansions)
                .collect()
        };
        match plan {
            Plan::Nothing => Resolved::Nothing,
            Plan::Term(t) => self.term(t),
            Plan::Phrase(terms) => self.phrase(terms.clone()),
            Plan::Prefix(p) => {
                let terms = live(
                    self.matching_terms(fst::automaton::Str::new(p).starts_with())
                        .into_iter()
                        .collect(),
                );
                any(terms.iter().map(|t| self.term(t)).collect())
            }
            Plan::PhrasePrefix { terms, prefix, offset } => {
                let expansions = live(
                    self.matching_terms(fst::automaton::Str::new(prefix).starts_with())
                        .into_iter()
                        .collect(),
                );
                any(expansions
                    .into_iter()
                    .map(|e| {
                        let mut all = terms.clone();
                        all.push((e, *offset));
                        self.phrase(all)
                    })
                    .filter(|r| *r != Resolved::Nothing)
                    .collect())
            }
            Plan::Fuzzy { term, distance } => {
                let dfa = fuzzy_builder(*distance).build_dfa(term);
                let mut found: Vec<(u8, String)> = self
                    .matching_terms(&dfa)
                    .into_iter()
                    .filter_map(|t| match dfa.eval(&t) {
                        Distance::Exact(d) => Some((d, t)),
                        Distance::AtLeast(_) => None,
                    })
                    .collect();
                found.sort();
                let terms = live(found.into_iter().map(|(_, t)| t).collect());
                any(terms.iter().map(|t| self.term(t)).collect())
            }
            Plan::Bool(b) => {
                let all = |qs: &[Plan]| -> Vec<Resolved> {
                    qs.iter()
                        .map(|q| self.resolve(q, max_expansions))
                        .filter(|r| *r != Resolved::Nothing)
                        .collect()
                };
                let must = all(&b.must);
                if must.len() < b.must.len() {
                    return Resolved::Nothing; // a required clause matches nothing
                }
                let r = Bool {
                    must,
                    should: all(&b.should),
                    must_not: all(&b.must_not),
                };
                if r.must.is_empty() && r.should.is_empty() {
                    Resolved::Nothing
                } else {
                    Resolved::Bool(r)
                }
            }
        }
    }

    /// The `k` best live documents whose row id `allow` accepts: highest score first, ties by
    /// row id.
    pub fn search(&self, query: &Resolved, k: usize, bm25: Bm25, allow: &dyn Fn(u64) -> bool) -> Vec<Hit> {
        let mut hits: Vec<Hit> = self
            .eval(query, bm25)
            .into_iter()
            .filter_map(|(key, score)| {
                let row_id = self.parts[(key >> 32) as usize].segment.row_ids()[(key & 0xffff_ffff) as usize];
                allow(row_id).then_some(Hit {
                    row_id,
                    score: score as f32,
                })
            })
            .collect();
        let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.row_id.cmp(&b.row_id));
        if hits.len() > k && k > 0 {
            hits.select_nth_unstable_by(k - 1, order);
        }
        hits.truncate(k);
        hits.sort_unstable_by(order);
        hits
    }

    fn tf_norm(&self, bm25: Bm25, tf: u32, len: u32) -> f64 {
        let tf = tf as f64;
        tf * (bm25.k1 + 1.0) / (tf + bm25.k1 * (1.0 - bm25.b + bm25.b * len as f64 / self.avg_len()))
    }

    fn eval(&self, query: &Resolved, bm25: Bm25) -> Scores {
        match query {
            Resolved::Nothing => vec![],
            Resolved::Term { term, idf } => {
                let mut out = vec![];
                for (i, part) in self.parts.iter().enumerate() {
                    for p in part.segment.postings(term) {
                        let (doc, tf, _) = part.segment.posting(p);
                        if part.is_live(doc) {
                            let len = part.segment.lengths()[doc as usize];
                            out.push(((i as u64) << 32 | doc as u64, idf * self.tf_norm(bm25, tf, len)));
                        }
                    }
                }
                out
            }
            Resolved::Phrase { terms, idf } => {
                let mut out = vec![];
                for (i, part) in self.parts.iter().enumerate() {
                    for (doc, tf) in phrase_matches(part, terms) {
                        let len = part.segment.lengths()[doc as usize];
                        out.push(((i as u64) << 32 | doc as u64, idf * self.tf_norm(bm25, tf, len)));
                    }
                }
                out
            }
            Resolved::Max(all) => all
                .iter()
                .map(|q| self.eval(q, bm25))
                .reduce(|a, b| merge(a, b, true, true, |x, y| Some(x.max(y))))
                .unwrap_or_default(),
            Resolved::Bool(b) => {
                let mut acc = match b.must.split_first() {
                    Some((first, rest)) => {
                        let mut acc = self.eval(first, bm25);
                        for q in rest {
                            acc = merge(acc, self.eval(q, bm25), false, false, |x, y| Some(x + y));
                        }
                        for q in &b.should {
                            acc = merge(acc, self.eval(q, bm25), true, false, |x, y| Some(x + y));
                        }
                        acc
                    }
                    None => b
                        .should
                        .iter()
                        .map(|q| self.eval(q, bm25))
                        .reduce(|a, b| merge(a, b, true, true, |x, y| Some(x + y)))
                        .unwrap_or_default(),
                };
                for q in &b.must_not {
                    acc = merge(acc, self.eval(q, bm25), true, false, |_, _| None);
                }
                acc
            }
        }
    }
}

/// Merges two key-sorted score lists: keys only in `a` (`keep_a`) or only in `b` (`keep_b`) are
/// kept as they are, keys in both get `both(a, b)` (dropped when `None`).
fn merge(a: Scores, b: Scores, keep_a: bool, keep_b: bool, both: impl Fn(f64, f64) -> Option<f64>) -> Scores {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => {
                if keep_a {
                    out.push(a[i]);
                }
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                if keep_b {
                    out.push(b[j]);
                }
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                if let Some(s) = both(a[i].1, b[j].1) {
                    out.push((a[i].0, s));
                }
                i += 1;
                j += 1;
            }
        }
    }
    if keep_a {
        out.extend_from_slice(&a[i..]);
    }
    if keep_b {
        out.extend_from_slice(&b[j..]);
    }
    out
}

/// Live documents of `part` holding the phrase, with how often it occurs in each.
fn phrase_matches(part: &Part, terms: &[(String, u32)]) -> Vec<(u32, u32)> {
    let seg = &part.segment;
    let ranges: Vec<_> = terms.iter().map(|(t, _)| seg.postings(t)).collect();
    if ranges.iter().any(|r| r.is_empty()) {
        return vec![];
    }
    let mut cursors: Vec<usize> = ranges.iter().map(|r| r.start).collect();
    let mut out = vec![];
    'docs: for p0 in ranges[0].clone() {
        let (doc, _, first) = seg.posting(p0);
        if !part.is_live(doc) {
            continue;
        }
        let mut lists = Vec::with_capacity(terms.len());
        for (i, range) in ranges.iter().enumerate().skip(1) {
            while cursors[i] < range.end && seg.posting(cursors[i]).0 < doc {
                cursors[i] += 1;
            }
            if cursors[i] == range.end {
                break 'docs;
            }
            let (d, _, positions) = seg.posting(cursors[i]);
            if d != doc {
                continue 'docs;
            }
            lists.push(positions);
        }
        let tf = first
            .iter()
            .filter(|p| {
                terms[1..].iter().zip(&lists).all(|((_, rel), list)| {
                    p.checked_sub(terms[0].1)
                        .is_some_and(|base| list.binary_search(&(base + rel)).is_ok())
                })
            })
            .count() as u32;
        if tf > 0 {
            out.push((doc, tf));
        }
    }
    out
}

/// Levenshtein automaton builders (no transpositions), made once per distance.
fn fuzzy_builder(distance: u8) -> &'static LevenshteinAutomatonBuilder {
    static BUILDERS: OnceLock<Vec<LevenshteinAutomatonBuilder>> = OnceLock::new();
    let all = BUILDERS.get_or_init(|| {
        (0..=MAX_FUZZY_DISTANCE)
            .map(|d| LevenshteinAutomatonBuilder::new(d, false))
            .collect()
    });
    &all[distance.min(MAX_FUZZY_DISTANCE) as usize]
}
