//! Query semantics with exact expected results, BM25 against a direct computation, and
//! segment splits and deletions ranking as one index over the live documents.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use vlake_text::{Analyzer, AnalyzerConfig, Bm25, Hit, Part, Query, Searcher, TextSegment};

const DOCS: [&str; 8] = [
    "The quick brown fox jumps over the lazy dog",
    "A quick brown dog outpaces a quick red fox",
    "Lazy dogs sleep all day",
    "The brown bear eats honey",
    "Foxes are quick and clever",
    "A dog is a loyal companion; dogs are loyal",
    "Quickly, the fox ran to the brownstone building",
    "Honey bees make honey",
];

fn analyzer() -> Analyzer {
    Analyzer::new(&AnalyzerConfig::default()).unwrap()
}

/// One searcher over `DOCS` (row id = index + 100), split into segments at `splits`, with the
/// rows in `deleted` not live.
fn searcher(splits: &[usize], deleted: &[u64]) -> Searcher {
    let a = analyzer();
    let mut bounds = vec![0];
    bounds.extend_from_slice(splits);
    bounds.push(DOCS.len());
    let parts = bounds
        .windows(2)
        .map(|w| {
            let docs = (w[0]..w[1]).map(|i| (i as u64 + 100, DOCS[i]));
            let segment = Arc::new(TextSegment::build(&a, docs).unwrap());
            Part::new(segment, |id| !deleted.contains(&id))
        })
        .collect();
    Searcher::new(parts)
}

fn search(s: &Searcher, q: &str) -> Vec<Hit> {
    let resolved = s.resolve(&Query::parse(q).unwrap().plan(&analyzer()), 50);
    s.search(&resolved, 100, Bm25::default(), &|_| true)
}

fn ids(s: &Searcher, q: &str) -> Vec<u64> {
    let mut got: Vec<u64> = search(s, q).iter().map(|h| h.row_id).collect();
    got.sort_unstable();
    got
}

#[test]
fn boolean_phrase_prefix_and_fuzzy_match_exactly() {
    let s = searcher(&[], &[]);
    // Stemming: dogs/dog, foxes/fox, quickly/quick.
    assert_eq!(ids(&s, "dog"), [100, 101, 102, 105]);
    assert_eq!(ids(&s, "fox"), [100, 101, 104, 106]);
    assert_eq!(ids(&s, "fox AND dog"), [100, 101]);
    assert_eq!(ids(&s, "fox dog"), [100, 101, 102, 104, 105, 106]);
    assert_eq!(ids(&s, "fox OR honey"), [100, 101, 103, 104, 106, 107]);
    assert_eq!(ids(&s, "fox -dog"), [104, 106]);
    assert_eq!(ids(&s, "fox AND NOT (dog OR clever)"), [106]);
    assert_eq!(ids(&s, "+honey bear"), [103, 107]);
    // Phrases: adjacent, in order; a stop word inside keeps its gap.
    assert_eq!(ids(&s, "\"quick brown\""), [100, 101]);
    assert_eq!(ids(&s, "\"brown quick\""), Vec::<u64>::new());
    assert_eq!(ids(&s, "\"lazy dog\""), [100, 102]);
    assert_eq!(ids(&s, "\"jumps over the lazy\""), [100]);
    assert_eq!(ids(&s, "\"jumps over lazy\""), Vec::<u64>::new());
    // Prefixes match indexed (stemmed) terms: brown, brownston.
    assert_eq!(ids(&s, "brown*"), [100, 101, 103, 106]);
    assert_eq!(ids(&s, "hon*"), [103, 107]);
    assert_eq!(ids(&s, "\"quick bro*\""), [100, 101]);
    assert_eq!(ids(&s, "\"the fox ran to the bro*\""), [106]);
    // Fuzzy: Levenshtein distance to indexed terms (no transpositions: bera is 2 from bear).
    assert_eq!(ids(&s, "hooney~1"), [103, 107]);
    assert_eq!(ids(&s, "Hooney~"), [103, 107]);
    assert_eq!(ids(&s, "hooney~0"), Vec::<u64>::new());
    assert_eq!(ids(&s, "bera~1"), Vec::<u64>::new());
    assert_eq!(ids(&s, "bera~2"), [103, 107]); // bear, bee
                                               // Expansions keep the nearest terms, then byte order: bear before bee.
    let one = s.resolve(&Query::parse("bera~2").unwrap().plan(&analyzer()), 1);
    let hits = s.search(&one, 10, Bm25::default(), &|_| true);
    assert_eq!(hits.iter().map(|h| h.row_id).collect::<Vec<_>>(), [103]);
    assert_eq!(one.positive_terms().into_iter().collect::<Vec<_>>(), ["bear"]);
    // Stop words only: nothing.
    assert!(search(&s, "the AND a").is_empty());
}

#[test]
fn bm25_scores_equal_the_formula() {
    let s = searcher(&[], &[]);
    let a = analyzer();
    let lengths: Vec<f64> = DOCS.iter().map(|d| a.analyze(d).len() as f64).collect();
    let n = DOCS.len() as f64;
    let avgdl = lengths.iter().sum::<f64>() / n;
    let idf = |df: f64| (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
    let tf = |f: f64, len: f64| f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len / avgdl));
    // "honey": doc 103 once, doc 107 twice; df = 2.
    let got = search(&s, "honey");
    let want = [
        (107, idf(2.0) * tf(2.0, lengths[7])),
        (103, idf(2.0) * tf(1.0, lengths[3])),
    ];
    assert_eq!(got.len(), 2);
    for (h, (id, score)) in got.iter().zip(want) {
        assert_eq!(h.row_id, id);
        assert!((h.score as f64 - score).abs() < 1e-5, "{h:?} vs {score}");
    }
    // A phrase scores its terms' summed IDF with the phrase frequency: "quick brown" in 100, 101.
    let got = search(&s, "\"quick brown\"");
    let phrase_idf = idf(s.doc_freq("quick") as f64) + idf(s.doc_freq("brown") as f64);
    assert!((got[0].score as f64 - phrase_idf * tf(1.0, lengths[got[0].row_id as usize - 100])).abs() < 1e-5);
    // A boolean OR sums clause scores.
    let fox = search(&s, "fox");
    let dog = search(&s, "dog");
    let both = search(&s, "fox dog");
    let score = |hits: &[Hit], id: u64| hits.iter().find(|h| h.row_id == id).map_or(0.0, |h| h.score);
    assert!((score(&both, 100) - score(&fox, 100) - score(&dog, 100)).abs() < 1e-5);
}

#[test]
fn segments_and_deletions_rank_like_one_index_of_the_live_documents() {
    let whole = searcher(&[], &[]);
    let deleted = [101u64, 106];
    let live_docs: Vec<(u64, &str)> = (0..DOCS.len())
        .map(|i| (i as u64 + 100, DOCS[i]))
        .filter(|(id, _)| !deleted.contains(id))
        .collect();
    let rebuilt = Searcher::new(vec![Part::new(
        Arc::new(TextSegment::build(&analyzer(), live_docs).unwrap()),
        |_| true,
    )]);
    for q in [
        "dog",
        "fox OR honey",
        "\"quick brown\"",
        "brown*",
        "hooney~1",
        "quick -lazy",
        "\"quick bro*\"",
    ] {
        assert_eq!(search(&whole, q), search(&searcher(&[3], &[]), q), "{q}");
        assert_eq!(search(&whole, q), search(&searcher(&[1, 2, 5], &[]), q), "{q}");
        assert_eq!(search(&rebuilt, q), search(&searcher(&[2, 5], &deleted), q), "{q}");
    }
    assert_eq!(ids(&searcher(&[2, 5], &deleted), "dog"), [100, 102, 105]);
}

#[test]
fn results_are_ordered_and_filtered() {
    let s = searcher(&[4], &[]);
    let resolved = s.resolve(&Query::parse("dog").unwrap().plan(&analyzer()), 50);
    let top2 = s.search(&resolved, 2, Bm25::default(), &|_| true);
    let all = s.search(&resolved, 10, Bm25::default(), &|_| true);
    assert_eq!(top2, all[..2]);
    assert!(all.windows(2).all(|w| w[0].score >= w[1].score));
    let odd = s.search(&resolved, 10, Bm25::default(), &|id| id % 2 == 1);
    assert_eq!(odd.iter().map(|h| h.row_id).collect::<Vec<_>>(), [105, 101]);
}
