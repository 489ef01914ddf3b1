"""Full-text and hybrid search from Python: BM25 agreement with rank_bm25 on the dev glosses
(same tokens, from ``vlake.analyze``), exact phrase/prefix/fuzzy results, snippets, SQL, hybrid."""

import math
import random

import pyarrow as pa
import pytest
from rank_bm25 import BM25Okapi

import vlake


class LuceneBM25(BM25Okapi):
    """rank_bm25's Okapi BM25 with Lucene's IDF, ln(1 + (N - df + 0.5) / (df + 0.5)), which vlake
    (like Lucene, Elasticsearch and tantivy) uses; rank_bm25's own IDF is ln((N - df + 0.5) /
    (df + 0.5)) with a floor. Term-frequency normalisation and summing are rank_bm25's."""

    def _calc_idf(self, nd):
        self.idf = {w: math.log(1 + (self.corpus_size - df + 0.5) / (df + 0.5)) for w, df in nd.items()}


@pytest.fixture(scope="module")
def gloss_table(tmp_path_factory, dev_rows):
    t = vlake.write_table(dev_rows.select(["id", "pos", "words", "gloss"]), str(tmp_path_factory.mktemp("g") / "t"))
    return t.create_index("gloss", type="fts")


def test_bm25_agrees_with_rank_bm25_on_the_dev_glosses(gloss_table, dev_rows):
    glosses = dev_rows.column("gloss").to_pylist()
    ids = dev_rows.column("id").to_pylist()
    corpus = [vlake.analyze(g) for g in glosses]
    reference = LuceneBM25(corpus, k1=1.2, b=0.75)
    rng = random.Random(7)
    # Queries: two or three words of random glosses (any word, stop words included) and lemmas.
    queries = []
    for g in rng.sample(glosses, 30):
        words = [w.strip(",.;()'\"") for w in g.split()]
        queries.append(" ".join(rng.sample(words, min(3, len(words)))))
    queries += [w.split(",")[0] for w in rng.sample(dev_rows.column("words").to_pylist(), 20)]
    compared = 0
    for q in queries:
        # Words that are one token each, quoted so that no word is read as an operator.
        words = [w for w in (x.replace('"', "").replace("\\", "") for x in q.split()) if len(vlake.analyze(w)) == 1]
        if not words:
            continue
        tokens = [vlake.analyze(w)[0] for w in words]
        scores = reference.get_scores(tokens)
        want = sorted(((float(s), ids[i]) for i, s in enumerate(scores) if s > 0), key=lambda x: (-x[0], x[1]))[:10]
        query = " ".join(f'"{w}"' for w in words)
        got = gloss_table.full_text_search(query, column="gloss", k=10, columns=["id"])
        got = list(zip(got.column("_score").to_pylist(), got.column("id").to_pylist()))
        assert len(got) == len(want), q
        for (gs, gid), (ws, wid) in zip(got, want):
            assert gs == pytest.approx(ws, rel=1e-5), (q, got, want)
            # Ids agree except among rows whose scores tie.
            if gid != wid:
                assert any(abs(s - gs) < 1e-5 * ws and i == gid for s, i in want), (q, got, want)
        compared += 1
    assert compared >= 40


def test_phrase_prefix_fuzzy_and_boolean_have_exact_results(tmp_path):
    docs = [
        "the domestic dog barks",
        "a dog of domestic habits",
        "domesticated cats purr",
        "the dogfish is a small shark",
        "wild dogs hunt in packs",
    ]
    t = vlake.write_table(pa.table({"id": list(range(5)), "text": docs}), str(tmp_path / "t"))
    t = t.create_index("text", type="fts")

    def ids(q, **kw):
        return sorted(t.full_text_search(q, **kw).column("id").to_pylist())

    assert ids('"domestic dog"') == [0]
    assert ids("domestic AND dog") == [0, 1]
    assert ids("dog -domestic") == [4]
    assert ids("dog*") == [0, 1, 3, 4]  # dog, dogfish
    assert ids('"domestic do*"') == [0]
    assert ids("dgo~1") == []  # a transposition is two edits
    assert ids("dgo~2") == [0, 1, 4]
    assert ids("sharks~1 OR purr") == [2, 3]
    snippet = t.full_text_search('"domestic dog"', snippet=True).column("_snippet").to_pylist()
    assert snippet == ["the <b>domestic</b> <b>dog</b> barks"]
    with pytest.raises(vlake.InvalidInputError, match="unclosed"):
        t.full_text_search("(dog OR cat")
    # Appended rows are found before the index is updated; deleted rows never are.
    t = t.append(pa.table({"id": [5], "text": ["a dog sled"]})).delete("id = 1")
    assert ids("dog") == [0, 4, 5]


def test_analyze_and_analyzer_options(tmp_path):
    assert vlake.analyze("The Running Dogs") == ["run", "dog"]
    assert vlake.analyze("The Running Dogs", {"stemmer": None, "stop_words": None}) == ["the", "running", "dogs"]
    t = vlake.write_table(pa.table({"id": [1, 2], "text": ["Running dogs", "The runner"]}), str(tmp_path / "t"))
    t = t.create_index("text", type="fts", analyzer={"stemmer": None})
    assert t.full_text_search("running").column("id").to_pylist() == [1]
    assert t.full_text_search("run*").column("id").to_pylist() in ([1, 2], [2, 1])
    with pytest.raises(vlake.InvalidInputError, match="bad analyzer options"):
        vlake.analyze("x", {"colour": "red"})


def test_sql_functions(gloss_table):
    rows = vlake.sql(
        "SELECT id, _score, _snippet FROM full_text_search('g', 'gloss', '\"united states\" AND nav*', 3)", tables={"g": gloss_table}
    )
    assert rows.num_rows == 3
    assert all("<b>" in s for s in rows.column("_snippet").to_pylist())
    scores = rows.column("_score").to_pylist()
    assert scores == sorted(scores, reverse=True)


def test_hybrid_search_fuses_both_rankings(tmp_path, dev_rows):
    t = vlake.write_table(dev_rows.slice(0, 3000), str(tmp_path / "t")).create_index("gloss", type="fts")
    v = dev_rows.column("vector")[5].values.to_numpy()
    vector_ids = t.search(v, column="vector").metric("cosine").limit(50).to_arrow().column("id").to_pylist()
    text_ids = t.full_text_search("animal", column="gloss", k=50).column("id").to_pylist()

    def hybrid(**kw):
        got = t.hybrid_search(v, "animal", vector_column="vector", text_column="gloss", metric="cosine", **kw)
        return got.column("id").to_pylist()

    # RRF: the reference fusion of the two top-50 lists.
    rrf = {}
    for ranking in (vector_ids, text_ids):
        for rank, i in enumerate(ranking):
            rrf[i] = rrf.get(i, 0.0) + 1 / (60 + rank + 1)
    assert hybrid() == [i for i, _ in sorted(rrf.items(), key=lambda x: (-x[1], x[0]))[:10]]
    assert hybrid(fusion="weighted", vector_weight=1.0) == vector_ids[:10]
    assert hybrid(fusion="weighted", vector_weight=0.0) == text_ids[:10]
    middle = sorted(dev_rows.column("id").to_pylist()[:3000])[1500]
    filtered = t.hybrid_search(v, "animal", vector_column="vector", text_column="gloss", filter=f"id >= {middle}")
    assert filtered.num_rows == 10 and min(filtered.column("id").to_pylist()) >= middle
    assert filtered.column_names[-1] == "_score"
    with pytest.raises(vlake.InvalidInputError, match="fusion must be rrf or weighted"):
        hybrid(fusion="max")
