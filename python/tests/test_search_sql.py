"""Vector search and SQL on the dev dataset (real MiniLM embeddings, exact ground truth)."""

import pyarrow as pa
import pytest

import vlake
from conftest import small


def _recall(found, truth):
    return len(set(found) & set(truth[:10])) / 10


def test_index_search_recall_and_filters(dev_table, dev_queries):
    queries = dev_queries.slice(0, 50).to_pylist()
    recall = []
    for q in queries:
        hits = dev_table.search(q["vector"]).limit(10).select(["id"]).to_arrow()
        assert hits.column_names == ["id", "_distance"]
        d = hits.column("_distance").to_pylist()
        assert d == sorted(d)
        recall.append(_recall(hits.column("id").to_pylist(), q["gt"]))
    assert sum(recall) / len(recall) >= 0.95

    exact = dev_table.search(queries[0]["vector"]).exact().limit(10).to_arrow()
    assert _recall(exact.column("id").to_pylist(), queries[0]["gt"]) >= 0.9

    # A prefilter returns exactly k matching rows.
    for q in queries[:10]:
        rows = dev_table.search(q["vector"]).where("pos = 'r'").limit(10).select(["id", "pos"]).to_list()
        assert len(rows) == 10 and all(r["pos"] == "r" for r in rows)
    post = dev_table.search(queries[0]["vector"]).where("pos = 'r'", prefilter=False).limit(10).to_arrow()
    assert set(post.column("pos").to_pylist()) <= {"r"}

    assert [i["type"] for i in dev_table.indexes] == ["hnsw"]


def test_search_options_and_errors(tmp_path):
    t = vlake.write_table(small(500, dim=8), str(tmp_path / "t"))
    q = [float(100 + d) for d in range(8)]
    for kind in ["ivf_flat", "ivf_pq", "hnsw"]:
        t = t.create_index("vector", type=kind, metric="l2", name=f"{kind}_idx", partitions=8, subvectors=4)
    assert {i["name"] for i in t.indexes} == {"ivf_flat_idx", "ivf_pq_idx", "hnsw_idx"}
    hits = t.search(q).nprobes(8).refine(20).ef(100).limit(3).to_list()
    assert hits[0]["id"] == 100 and hits[0]["_distance"] == 0.0
    within = t.search(q).exact().metric("l2").within(8.5).limit(100).to_arrow()
    assert sorted(within.column("id").to_pylist()) == [99, 100, 101]
    numpy = pytest.importorskip("numpy")
    assert t.search(numpy.array(q, dtype="float32")).limit(1).to_list()[0]["id"] == 100

    with pytest.raises(vlake.InvalidInputError, match="dimensions"):
        t.search([1.0, 2.0]).to_arrow()
    with pytest.raises(vlake.InvalidInputError, match="(?i)nan|finite"):
        t.search([float("nan")] * 8).to_arrow()
    with pytest.raises(vlake.InvalidInputError, match="k must"):
        t.search(q).limit(0).to_arrow()
    with pytest.raises(vlake.InvalidInputError, match="not a vector column"):
        t.search(q, column="pos").to_arrow()
    with pytest.raises(vlake.InvalidInputError, match="(?i)filter"):
        t.search(q).where("pos = = 1").to_arrow()
    with pytest.raises(vlake.InvalidInputError, match="sequence of numbers"):
        t.search(["a", "b"])
    with pytest.raises(vlake.InvalidInputError, match="unknown index type"):
        t.create_index("vector", type="btree")
    with pytest.raises(vlake.InvalidInputError, match="not a vector column"):
        t.create_index("pos", type="hnsw")
    no_vectors = vlake.write_table(pa.table({"x": [1]}), str(tmp_path / "nv"))
    with pytest.raises(vlake.InvalidInputError, match="0 vector columns"):
        no_vectors.search([1.0])


def test_appended_rows_are_found_and_indexed(tmp_path):
    t = vlake.write_table(small(300, dim=8), str(tmp_path / "t")).create_index("vector", metric="l2")
    t = t.append(small(10, dim=8, start=5000))
    q = [float(5003 + d) for d in range(8)]
    assert t.search(q).limit(1).to_list()[0]["id"] == 5003
    t = t.update_index("vector_idx")
    assert t.search(q).limit(1).to_list()[0]["id"] == 5003


def test_sql(dev_table, dev_queries, tmp_path):
    counts = vlake.sql("SELECT pos, count(*) AS n FROM w GROUP BY pos ORDER BY pos", tables={"w": dev_table})
    assert counts.to_pydict() == {"pos": ["a", "n", "r", "s", "v"], "n": [1297, 13935, 601, 1823, 2344]}
    q = dev_queries.slice(0, 1).to_pylist()[0]
    literal = "[" + ", ".join(repr(float(x)) for x in q["vector"]) + "]"
    knn = vlake.sql(
        f"SELECT id, cosine_distance(vector, {literal}) AS d FROM w ORDER BY d LIMIT 10", tables={"w": dev_table}
    )
    assert len(set(knn.column("id").to_pylist()) & set(q["gt"][:10])) >= 9
    plan = vlake.sql(f"EXPLAIN SELECT id FROM w ORDER BY cosine_distance(vector, {literal}) LIMIT 10", tables={"w": dev_table})
    assert "VectorSearchExec" in "\n".join(plan.column(1).to_pylist())
    found = vlake.sql(f"SELECT id FROM vector_search('w', 'vector', {literal}, 5, 'pos = ''n''')", tables={"w": dev_table})
    assert found.num_rows == 5

    # Tables by URI, several statements, INSERT as one commit, a pinned old version.
    uri = str(tmp_path / "t")
    vlake.write_table(small(10), uri)
    out = vlake.sql("INSERT INTO t SELECT id + 10, pos, vector FROM t; SELECT count(*) AS n FROM t", tables={"t": uri})
    assert out.to_pydict() == {"n": [20]}
    assert vlake.open(uri).version == 2
    old = vlake.sql("SELECT count(*) AS n FROM t", tables={"t": vlake.open(uri, version=1)})
    assert old.to_pydict() == {"n": [10]}

    with pytest.raises(vlake.InvalidInputError, match="nope"):
        vlake.sql("SELECT * FROM nope")
    with pytest.raises(vlake.InvalidInputError):
        vlake.sql("SELEC 1")
    with pytest.raises(vlake.InvalidInputError, match="different dimensions"):
        vlake.sql("SELECT l2_distance(vector, [1.0]) FROM t", tables={"t": uri})
    with pytest.raises(vlake.VlakeError, match="read-only"):
        vlake.sql("INSERT INTO t SELECT * FROM t", tables={"t": vlake.open(uri, version=1)})


def test_missing_index_file_fails_or_falls_back(tmp_path):
    import os

    t = vlake.write_table(small(300, dim=8), str(tmp_path / "t")).create_index("vector", metric="l2")
    files = t.indexes[0]["files"]
    for f in files:
        os.remove(os.path.join(t.uri, f))
    q = [float(7 + d) for d in range(8)]
    fresh = vlake.open(t.uri)  # a new handle: nothing of the index is cached yet
    with pytest.raises(vlake.VlakeError, match=os.path.basename(files[0])):
        fresh.search(q).limit(1).to_arrow()
    assert fresh.search(q).fallback_to_exact().limit(1).to_list()[0]["id"] == 7


def test_process_caches_report_and_clear(tmp_path):
    """Tables opened in a process share its caches; stats report them, clear empties them, and
    new budgets apply to tables opened afterwards."""
    t = vlake.write_table(small(200), str(tmp_path / "t"))
    vlake.clear_cache()
    q = t.head(1).column("vector").to_pylist()[0]
    t.search(q).exact().limit(3).to_arrow()
    stats = vlake.cache_stats()
    assert stats["vectors"]["entries"] == 1 and stats["vectors"]["weight"] > 0
    assert stats["footers"]["entries"] >= 1
    misses = stats["vectors"]["misses"]
    vlake.open(str(tmp_path / "t")).search(q).exact().limit(3).to_arrow()
    again = vlake.cache_stats()["vectors"]
    assert (again["misses"], again["hits"]) == (misses, stats["vectors"]["hits"] + 1), "served from the cache"
    vlake.clear_cache()
    assert vlake.cache_stats()["vectors"]["entries"] == 0

    vlake.set_cache_budgets(vector_bytes=0)
    try:
        fresh = vlake.open(str(tmp_path / "t"))
        fresh.search(q).exact().limit(3).to_arrow()
        assert vlake.cache_stats()["vectors"]["entries"] == 0
        assert vlake.cache_stats()["vectors"]["capacity"] == 0
    finally:
        vlake.set_cache_budgets()
