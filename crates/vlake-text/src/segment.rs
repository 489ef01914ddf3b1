//! Inverted-index segments (format-spec/fts.md#fts-segments): a term dictionary (an FST from
//! term to term number), postings with term frequencies and positions, and each document's row
//! id and length. Built in memory from `(row id, text)` pairs; written and read in the segment
//! file layout of `vlake_format::segment`.

use std::collections::HashMap;
use std::ops::Range;

use serde::{Deserialize, Serialize};
use vlake_format::segment::{to_u32, to_u64, u32_bytes, u64_bytes, SegmentHeader, SegmentWriter};
use vlake_format::{Error, Result};

use crate::analyzer::{Analyzer, AnalyzerConfig};

/// The segment `kind` of full-text segments.
pub const KIND: &str = "fts";

/// Header parameters of a full-text segment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TextMeta {
    /// The analyzer the terms were made with.
    pub analyzer: AnalyzerConfig,
    /// Documents (rows with a non-null text).
    pub docs: u64,
    /// Distinct terms.
    pub terms: u64,
    /// Postings (term, document pairs).
    pub postings: u64,
    /// Tokens, the sum of the document lengths.
    pub tokens: u64,
}

/// One inverted-index segment in memory.
#[derive(Debug)]
pub struct TextSegment {
    meta: TextMeta,
    terms: fst::Map<Vec<u8>>,
    /// `terms + 1` offsets into `docs`/`freqs`: term `t`'s postings are `postings[t]..postings[t + 1]`.
    postings: Vec<u64>,
    /// Document numbers, ascending within a term.
    docs: Vec<u32>,
    /// Term frequency of each posting (at least 1).
    freqs: Vec<u32>,
    /// `postings + 1` offsets into `positions` (prefix sums of `freqs`; not stored).
    position_starts: Vec<u64>,
    /// Token positions of each posting, ascending.
    positions: Vec<u32>,
    /// Row id of each document.
    row_ids: Vec<u64>,
    /// Token count of each document.
    lengths: Vec<u32>,
}

#[derive(Default)]
struct TermPostings {
    docs: Vec<u32>,
    freqs: Vec<u32>,
    positions: Vec<u32>,
}

impl TextSegment {
    /// Analyzes and indexes `docs`, `(row id, text)` pairs.
    pub fn build<'a>(analyzer: &Analyzer, docs: impl IntoIterator<Item = (u64, &'a str)>) -> Result<Self> {
        let mut by_term: HashMap<String, TermPostings> = HashMap::new();
        let (mut row_ids, mut lengths) = (vec![], vec![]);
        for (row_id, text) in docs {
            let doc = u32::try_from(row_ids.len())
                .map_err(|_| Error::invalid("a full-text segment holds at most 2^32 - 1 documents"))?;
            let mut length = 0u32;
            analyzer.for_each_token(text, |token| {
                length += 1;
                let p = by_term.entry(token.text).or_default();
                if p.docs.last() == Some(&doc) {
                    if let Some(f) = p.freqs.last_mut() {
                        *f += 1;
                    }
                } else {
                    p.docs.push(doc);
                    p.freqs.push(1);
                }
                p.positions.push(token.position);
            });
            row_ids.push(row_id);
            lengths.push(length);
        }
        let mut sorted: Vec<(String, TermPostings)> = by_term.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut builder = fst::MapBuilder::memory();
        let mut postings = Vec::with_capacity(sorted.len() + 1);
        let (mut all_docs, mut freqs, mut positions) = (vec![], vec![], vec![]);
        postings.push(0);
        for (ord, (term, p)) in sorted.into_iter().enumerate() {
            builder
                .insert(term.as_bytes(), ord as u64)
                .map_err(|e| Error::Internal(format!("term dictionary: {e}")))?;
            all_docs.extend(p.docs);
            freqs.extend(p.freqs);
            positions.extend(p.positions);
            postings.push(all_docs.len() as u64);
        }
        let terms = fst::Map::new(
            builder
                .into_inner()
                .map_err(|e| Error::Internal(format!("term dictionary: {e}")))?,
        )
        .map_err(|e| Error::Internal(format!("term dictionary: {e}")))?;
        let meta = TextMeta {
            analyzer: analyzer.config().clone(),
            docs: row_ids.len() as u64,
            terms: terms.len() as u64,
            postings: all_docs.len() as u64,
            tokens: lengths.iter().map(|l| *l as u64).sum(),
        };
        Ok(Self {
            position_starts: prefix_sums(&freqs),
            meta,
            terms,
            postings,
            docs: all_docs,
            freqs,
            positions,
            row_ids,
            lengths,
        })
    }

    /// The segment file's bytes.
    pub fn write(&self) -> Result<Vec<u8>> {
        let mut w = SegmentWriter::default();
        w.blob("terms", self.terms.as_fst().as_bytes().to_vec());
        w.blob("postings", u64_bytes(&self.postings));
        w.blob("docs", u32_bytes(&self.docs));
        w.blob("freqs", u32_bytes(&self.freqs));
        w.blob("positions", u32_bytes(&self.positions));
        w.blob("row_ids", u64_bytes(&self.row_ids));
        w.blob("lengths", u32_bytes(&self.lengths));
        let params = serde_json::to_value(&self.meta).map_err(|e| Error::Internal(e.to_string()))?;
        w.finish(KIND, params)
    }

    /// Reads a whole segment file whose header has been parsed, checking every invariant of
    /// format-spec/fts.md (`corrupt` naming `path` otherwise).
    pub fn read(bytes: &[u8], header: &SegmentHeader, path: &str) -> Result<Self> {
        let bad = |why: String| Error::corrupt(path, why);
        if header.kind != KIND {
            return Err(bad(format!("segment kind is '{}', not '{KIND}'", header.kind)));
        }
        let meta: TextMeta = serde_json::from_value(header.params.clone())
            .map_err(|e| bad(format!("bad full-text segment parameters: {e}")))?;
        let blob = |name: &str| -> Result<&[u8]> {
            let r = header.blob(name, path)?;
            bytes
                .get(r.start as usize..r.end as usize)
                .ok_or_else(|| bad("index segment is truncated".into()))
        };
        let terms = fst::Map::new(blob("terms")?.to_vec()).map_err(|e| bad(format!("bad term dictionary: {e}")))?;
        let postings = to_u64(blob("postings")?, path, "postings")?;
        let docs = to_u32(blob("docs")?, path, "docs")?;
        let freqs = to_u32(blob("freqs")?, path, "freqs")?;
        let positions = to_u32(blob("positions")?, path, "positions")?;
        let row_ids = to_u64(blob("row_ids")?, path, "row_ids")?;
        let lengths = to_u32(blob("lengths")?, path, "lengths")?;
        let n = row_ids.len();
        let t = terms.len();
        let counts_agree = meta.docs == n as u64
            && meta.terms == t as u64
            && meta.postings == docs.len() as u64
            && lengths.len() == n
            && freqs.len() == docs.len()
            && postings.len() == t + 1;
        if !counts_agree {
            return Err(bad(format!(
                "full-text segment sizes disagree: {n} row ids, {} lengths, {t} terms, {} posting offsets, {} docs, {} freqs; header says {} docs, {} terms, {} postings",
                lengths.len(),
                postings.len(),
                docs.len(),
                freqs.len(),
                meta.docs,
                meta.terms,
                meta.postings
            )));
        }
        if postings.first() != Some(&0)
            || postings.last() != Some(&(docs.len() as u64))
            || postings.windows(2).any(|w| w[0] > w[1])
        {
            return Err(bad(
                "posting offsets are not ascending from 0 to the posting count".into()
            ));
        }
        if terms.stream().into_values().into_iter().any(|v| v >= t as u64) {
            return Err(bad("the term dictionary names a term number out of range".into()));
        }
        for w in postings.windows(2) {
            let list = &docs[w[0] as usize..w[1] as usize];
            if list.iter().any(|d| *d as usize >= n) || list.windows(2).any(|p| p[0] >= p[1]) {
                return Err(bad(
                    "a posting list is not ascending document numbers below the document count".into(),
                ));
            }
        }
        if freqs.contains(&0) {
            return Err(bad("a posting has term frequency 0".into()));
        }
        let position_starts = prefix_sums(&freqs);
        if position_starts.last() != Some(&(positions.len() as u64)) {
            return Err(bad(format!(
                "{} positions but the term frequencies sum to {:?}",
                positions.len(),
                position_starts.last()
            )));
        }
        if position_starts
            .windows(2)
            .any(|w| positions[w[0] as usize..w[1] as usize].windows(2).any(|p| p[0] >= p[1]))
        {
            return Err(bad("a posting's positions are not ascending".into()));
        }
        Ok(Self {
            meta,
            terms,
            postings,
            docs,
            freqs,
            position_starts,
            positions,
            row_ids,
            lengths,
        })
    }

    /// The header parameters.
    pub fn meta(&self) -> &TextMeta {
        &self.meta
    }

    /// Number of documents.
    pub fn num_docs(&self) -> usize {
        self.row_ids.len()
    }

    /// Row id of each document.
    pub fn row_ids(&self) -> &[u64] {
        &self.row_ids
    }

    /// Token count of each document.
    pub fn lengths(&self) -> &[u32] {
        &self.lengths
    }

    /// Bytes held in memory.
    pub fn bytes(&self) -> usize {
        self.terms.as_fst().as_bytes().len()
            + 8 * (self.postings.len() + self.position_starts.len() + self.row_ids.len())
            + 4 * (self.docs.len() + self.freqs.len() + self.positions.len() + self.lengths.len())
    }

    /// The term dictionary.
    pub fn terms(&self) -> &fst::Map<Vec<u8>> {
        &self.terms
    }

    /// The posting numbers of `term` (empty when the segment lacks it).
    pub fn postings(&self, term: &str) -> Range<usize> {
        match self.terms.get(term) {
            Some(t) => self.postings[t as usize] as usize..self.postings[t as usize + 1] as usize,
            None => 0..0,
        }
    }

    /// Document, term frequency and positions of posting `p`.
    pub fn posting(&self, p: usize) -> (u32, u32, &[u32]) {
        let positions = &self.positions[self.position_starts[p] as usize..self.position_starts[p + 1] as usize];
        (self.docs[p], self.freqs[p], positions)
    }
}

fn prefix_sums(freqs: &[u32]) -> Vec<u64> {
    let mut out = Vec::with_capacity(freqs.len() + 1);
    let mut sum = 0u64;
    out.push(0);
    for f in freqs {
        sum += *f as u64;
        out.push(sum);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vlake_format::segment::{header_len, parse_header, PREFIX_LEN};

    fn parse(bytes: &[u8]) -> Result<TextSegment> {
        let len = header_len(&bytes[..PREFIX_LEN], "s")?;
        let header = parse_header(&bytes[PREFIX_LEN..PREFIX_LEN + len], "s")?;
        TextSegment::read(bytes, &header, "s")
    }

    #[test]
    fn round_trip_and_postings() {
        let analyzer = Analyzer::new(&AnalyzerConfig::simple()).unwrap();
        let seg = TextSegment::build(&analyzer, [(10, "a dog and a cat"), (11, ""), (12, "dog dog")]).unwrap();
        let back = parse(&seg.write().unwrap()).unwrap();
        assert_eq!(back.row_ids(), [10, 11, 12]);
        assert_eq!(back.lengths(), [5, 0, 2]);
        assert_eq!(back.meta(), seg.meta());
        let dog: Vec<_> = back.postings("dog").map(|p| back.posting(p)).collect();
        assert_eq!(dog, [(0, 1, &[1][..]), (2, 2, &[0, 1][..])]);
        assert_eq!(back.postings("a").len(), 1);
        assert!(back.postings("zebra").is_empty());
    }

    #[test]
    fn corrupt_segments_are_refused() {
        let analyzer = Analyzer::new(&AnalyzerConfig::simple()).unwrap();
        let bytes = TextSegment::build(&analyzer, [(1, "x y"), (2, "y")])
            .unwrap()
            .write()
            .unwrap();
        let len = header_len(&bytes[..PREFIX_LEN], "s").unwrap();
        let header = parse_header(&bytes[PREFIX_LEN..PREFIX_LEN + len], "s").unwrap();
        // The docs are [0] for "x", then [0, 1] for "y": make those of "y" [1, 1].
        let at = header.blob("docs", "s").unwrap().start as usize + 4;
        let mut broken = bytes.clone();
        broken[at..at + 4].copy_from_slice(&1u32.to_le_bytes());
        let err = parse(&broken).unwrap_err().to_string();
        assert!(err.contains("not ascending"), "{err}");
        let mut header2 = header.clone();
        header2.params["docs"] = 5.into();
        let err = TextSegment::read(&bytes, &header2, "s").unwrap_err().to_string();
        assert!(err.contains("sizes disagree"), "{err}");
    }
}
