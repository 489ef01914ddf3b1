"""The DuckDB extension (crates/vlake-duckdb) loaded into the `duckdb` Python package: results
must equal vlake's own API.

The extension is the file named by VLAKE_DUCKDB_EXTENSION, else the one
`scripts/build_duckdb_extension.sh` builds (it is run once per session when the variable is
unset). scripts/test.sh runs this file with the newest `duckdb` and again in a venv with
duckdb 1.5.6, the oldest release the extension supports.
"""

import os
import pathlib
import subprocess
import time

import numpy as np
import pyarrow as pa
import pytest

import vlake
from conftest import small

duckdb = pytest.importorskip("duckdb")

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def extension() -> str:
    path = os.environ.get("VLAKE_DUCKDB_EXTENSION")
    if not path:
        built = subprocess.run(
            [str(ROOT / "scripts" / "build_duckdb_extension.sh")], cwd=ROOT, check=True, capture_output=True, text=True
        )
        path = built.stdout.strip().splitlines()[-1]
    path = str(pathlib.Path(path).resolve())
    assert pathlib.Path(path).exists(), path
    return path


@pytest.fixture()
def con(extension):
    c = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    c.execute(f"LOAD '{extension}'")
    yield c
    c.close()


@pytest.fixture()
def history(tmp_path):
    """A table with three versions: 100 rows (tagged `first`), +50 rows, then ids < 10 deleted."""
    uri = str(tmp_path / "t")
    t = vlake.write_table(small(100), uri)
    t.create_tag("first", 1)
    t = t.append(small(50, start=100))
    t = t.delete("id < 10")
    return t


def ids(con, sql, *args):
    return sorted(r[0] for r in con.execute(sql, *args).fetchall())


def test_scan_equals_vlake(con, history):
    uri = history.uri
    assert con.execute(f"SELECT count(*) FROM vlake_scan('{uri}')").fetchone()[0] == history.count_rows() == 140
    expected = history.to_arrow().sort_by("id")
    got = con.execute(f"SELECT * FROM vlake_scan('{uri}') ORDER BY id")
    assert [d[0] for d in got.description] == ["id", "pos", "vector"]
    rows = got.fetchall()
    assert [r[0] for r in rows] == expected.column("id").to_pylist()
    assert [r[1] for r in rows] == expected.column("pos").to_pylist()
    assert [list(r[2]) for r in rows] == expected.column("vector").to_pylist()


def test_projection_and_aggregates(con, history):
    uri = history.uri
    rows = con.execute(f"SELECT pos, count(*), sum(id) FROM vlake_scan('{uri}') GROUP BY pos ORDER BY pos").fetchall()
    data = history.to_arrow().to_pylist()
    for pos, n, total in rows:
        mine = [r["id"] for r in data if r["pos"] == pos]
        assert (n, total) == (len(mine), sum(mine))
    # Only the projected column is declared, and its type is DuckDB's.
    desc = con.execute(f"DESCRIBE SELECT id FROM vlake_scan('{uri}')").fetchall()
    assert [(r[0], r[1]) for r in desc] == [("id", "BIGINT")]


def test_time_travel_by_version_and_tag(con, history):
    uri = history.uri
    assert con.execute(f"SELECT count(*) FROM vlake_scan('{uri}', version := 1)").fetchone()[0] == 100
    assert con.execute(f"SELECT count(*) FROM vlake_scan('{uri}', version := 2)").fetchone()[0] == 150
    assert ids(con, f"SELECT id FROM vlake_scan('{uri}', tag := 'first')") == list(range(100))
    assert ids(con, f"SELECT id FROM vlake_scan('{uri}', version := 2)") == list(range(150))


def test_deleted_rows_absent(con, history):
    uri = history.uri
    assert ids(con, f"SELECT id FROM vlake_scan('{uri}')") == list(range(10, 150))
    assert con.execute(f"SELECT count(*) FROM vlake_scan('{uri}') WHERE id < 10").fetchone()[0] == 0


def test_filter_and_row_ids(con, history):
    uri = history.uri
    n = con.execute(f"SELECT count(*) FROM vlake_scan('{uri}', filter := 'pos = ''n'' AND id >= 100')").fetchone()[0]
    assert n == history.count_rows("pos = 'n' AND id >= 100") == 25
    rows = con.execute(f"SELECT id, _rowid FROM vlake_scan('{uri}', with_row_id := true)").fetchall()
    assert len({r[1] for r in rows}) == len(rows) == 140
    desc = con.execute(f"DESCRIBE SELECT _rowid FROM vlake_scan('{uri}', with_row_id := true)").fetchall()
    assert desc[0][1] == "UBIGINT"


def test_vectors_are_float_arrays(con, history):
    uri = history.uri
    assert con.execute(f"SELECT typeof(vector) FROM vlake_scan('{uri}') LIMIT 1").fetchone()[0] == "FLOAT[4]"
    q = [1.0, 2.0, 3.0, 5.0]
    rows = con.execute(
        f"SELECT id, array_cosine_distance(vector, ?::FLOAT[4]), array_distance(vector, ?::FLOAT[4]),"
        f" array_inner_product(vector, ?::FLOAT[4]) FROM vlake_scan('{uri}') ORDER BY id",
        [q, q, q],
    ).fetchall()
    for i, cos, l2, dot in rows:
        v = np.arange(i, i + 4, dtype=np.float64)
        qv = np.array(q)
        assert cos == pytest.approx(1 - v @ qv / np.linalg.norm(v) / np.linalg.norm(qv), abs=1e-5)
        assert l2 == pytest.approx(np.linalg.norm(v - qv), rel=1e-5)
        assert dot == pytest.approx(v @ qv, rel=1e-5)


def test_parallel_scan_over_many_files(con, tmp_path):
    t = vlake.write_table(small(1000), str(tmp_path / "many"))
    for i in range(1, 8):
        t = t.append(small(1000, start=i * 1000))
    con.execute("SET threads = 4")
    got = con.execute(f"SELECT count(*), sum(id), count(DISTINCT id) FROM vlake_scan('{t.uri}')").fetchone()
    assert got == (8000, sum(range(8000)), 8000)
    # More rows than one DuckDB vector per file, in every thread.
    assert ids(con, f"SELECT id FROM vlake_scan('{t.uri}') WHERE id % 997 = 0") == list(range(0, 8000, 997))


def test_search_equals_vlake(con, history):
    uri = history.uri
    q = [20.0, 21.0, 22.0, 23.0]
    expected = history.search(q, "vector").metric("l2").limit(5).to_arrow()
    got = con.execute(f"SELECT id, pos, _distance FROM vlake_search('{uri}', 'vector', ?, 5, metric := 'l2')", [q])
    rows = got.fetchall()
    assert [r[0] for r in rows] == expected.column("id").to_pylist()
    assert [r[2] for r in rows] == pytest.approx(expected.column("_distance").to_pylist())
    # A filter applies before ranking: k matching rows.
    rows = con.execute(
        f"SELECT id, pos FROM vlake_search('{uri}', 'vector', ?, 5, filter := 'pos = ''v''', metric := 'l2')", [q]
    ).fetchall()
    assert len(rows) == 5 and all(r[1] == "v" for r in rows)
    # Time travel: deleted rows are found in the version that still has them.
    old = con.execute(f"SELECT id FROM vlake_search('{uri}', 'vector', [0, 1, 2, 3], 1, version := 2)").fetchall()
    assert old == [(0,)]


def test_dev_search_recall(con, dev_table, dev_queries):
    uri = dev_table.uri
    queries = dev_queries.to_pylist()
    recall = []
    for q in queries:
        rows = con.execute(f"SELECT id, _distance FROM vlake_search('{uri}', 'vector', ?, 10)", [q["vector"]]).fetchall()
        assert [r[1] for r in rows] == sorted(r[1] for r in rows)
        recall.append(len({r[0] for r in rows} & set(q["gt"][:10])) / 10)
    assert sum(recall) / len(recall) >= 0.95
    # The same rows as vlake's own search.
    for q in queries[:5]:
        expected = dev_table.search(q["vector"]).limit(10).select(["id"]).to_arrow().column("id").to_pylist()
        rows = con.execute(f"SELECT id FROM vlake_search('{uri}', 'vector', ?, 10)", [q["vector"]]).fetchall()
        assert [r[0] for r in rows] == expected


def test_dev_scan_equals_vlake(con, dev_table):
    uri = dev_table.uri
    got = con.execute(
        f"SELECT count(*), count(DISTINCT id), sum(length(gloss)), sum(vector[1]) FROM vlake_scan('{uri}')"
    ).fetchone()
    data = dev_table.to_arrow(columns=["id", "gloss", "vector"])
    vectors = np.stack(data.column("vector").to_numpy(zero_copy_only=False))
    assert got[:3] == (data.num_rows, data.num_rows, sum(len(g) for g in data.column("gloss").to_pylist()))
    assert got[3] == pytest.approx(float(vectors[:, 0].astype(np.float64).sum()), rel=1e-4)


@pytest.mark.parametrize(
    "sql, message",
    [
        ("SELECT * FROM vlake_scan('{missing}')", "not found"),
        ("SELECT * FROM vlake_scan('{uri}', version := 99)", "not found"),
        ("SELECT * FROM vlake_scan('{uri}', tag := 'nope')", "not found"),
        ("SELECT * FROM vlake_scan('{uri}', filter := 'nope >')", "vlake"),
        ("SELECT * FROM vlake_scan('{uri}', version := 1, tag := 'first')", "one of version, tag and as_of"),
        ("SELECT * FROM vlake_scan('{uri}', as_of := TIMESTAMPTZ '2000-01-01 00:00:00+00')", "vlake"),
        ("SELECT * FROM vlake_scan('{uri}', columns := ['id', 'nope'])", "nope"),
        ("SELECT * FROM vlake_search_batch('{uri}', 'vector', [[1, 2, 3, 4], [1, 2]], 3)", "vlake"),
        ("SELECT * FROM vlake_search_batch('{uri}', 'vector', []::DOUBLE[][], 3)", "empty"),
        ("SELECT * FROM vlake_search('{uri}', 'vector', [1, 2], 3)", "vlake"),
        ("SELECT * FROM vlake_search('{uri}', 'nope', [1, 2, 3, 4], 3)", "vlake"),
        ("SELECT * FROM vlake_search('{uri}', 'vector', [1, 2, 3, 4], 3, metric := 'manhattan')", "vlake"),
    ],
)
def test_errors_are_duckdb_errors(con, history, tmp_path, sql, message):
    with pytest.raises(duckdb.Error, match=message):
        con.execute(sql.format(uri=history.uri, missing=tmp_path / "missing")).fetchall()
    # The host process and the connection survive.
    assert con.execute(f"SELECT count(*) FROM vlake_scan('{history.uri}')").fetchone()[0] == 140


def test_types_and_nulls(con, tmp_path):
    import datetime as dt
    import decimal

    n = 3000  # more than one DuckDB vector, so offsets into batches are exercised
    rows = pa.table(
        {
            "i8": pa.array([i % 100 if i % 7 else None for i in range(n)], pa.int8()),
            "u32": pa.array(range(n), pa.uint32()),
            "half": pa.array([[i % 1000, i % 1000 + 0.5, 1.0] if i % 5 else None for i in range(n)], pa.list_(pa.float16(), 3)),
            "ts_ms": pa.array([i * 1000 for i in range(n)], pa.timestamp("ms")),
            "ts_tz": pa.array([i * 1_000_000 for i in range(n)], pa.timestamp("us", tz="UTC")),
            "day": pa.array([i for i in range(n)], pa.date32()),
            "money": pa.array([decimal.Decimal(i) / 100 for i in range(n)], pa.decimal128(10, 2)),
            "small": pa.array([decimal.Decimal(i % 1000) / 10 for i in range(n)], pa.decimal128(4, 1)),
            "tags": pa.array([[i, i + 1] if i % 3 else ([] if i % 2 else None) for i in range(n)], pa.list_(pa.int32())),
            "meta": pa.array([{"a": i, "b": str(i)} for i in range(n)], pa.struct([("a", pa.int32()), ("b", pa.string())])),
            "raw": pa.array([bytes([i % 256]) * (i % 4) for i in range(n)], pa.binary()),
        }
    )
    t = vlake.write_table(rows, str(tmp_path / "types"))
    got = con.execute(f"SELECT * FROM vlake_scan('{t.uri}') ORDER BY u32").fetchall()
    types = [r[1] for r in con.execute(f"DESCRIBE SELECT * FROM vlake_scan('{t.uri}')").fetchall()]
    assert types == [
        "TINYINT",
        "UINTEGER",
        "FLOAT[3]",
        "TIMESTAMP_MS",
        "TIMESTAMP WITH TIME ZONE",
        "DATE",
        "DECIMAL(10,2)",
        "DECIMAL(4,1)",
        "INTEGER[]",
        "STRUCT(a INTEGER, b VARCHAR)",
        "BLOB",
    ]
    expected = t.to_arrow().sort_by("u32").to_pylist()
    assert len(got) == len(expected) == n
    for g, e in zip(got, expected):
        assert g[0] == e["i8"] and g[1] == e["u32"]
        assert (g[2] and list(g[2])) == (e["half"] and [float(v) for v in e["half"]])
        assert g[3] == e["ts_ms"]
        assert g[4] == e["ts_tz"].astimezone(g[4].tzinfo)
        assert g[5] == e["day"] and g[6] == e["money"] and g[7] == e["small"]
        assert g[8] == e["tags"]
        assert g[9] == e["meta"]
        assert g[10] == e["raw"]
    assert dt.date(1970, 1, 1) == got[0][5]


def test_concurrent_connections(con, history):
    import threading

    errors = []

    def run(c):
        try:
            for _ in range(20):
                assert c.execute(f"SELECT count(*) FROM vlake_scan('{history.uri}')").fetchone()[0] == 140
                rows = c.execute(f"SELECT id FROM vlake_search('{history.uri}', 'vector', [50, 51, 52, 53], 3)").fetchall()
                assert rows[0] == (50,)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(con.cursor(),)) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_cli_loads_the_extension(extension, history, tmp_path):
    import shutil
    import sys

    cli = os.environ.get("VLAKE_DUCKDB_CLI") or shutil.which("duckdb", path=os.path.dirname(sys.executable))
    if not cli:
        pytest.skip("no DuckDB CLI here (scripts/test.sh installs duckdb-cli in the duckdb 1.5.6 venv)")
    sql = f"LOAD '{extension}'; SELECT count(*), sum(id) FROM vlake_scan('{history.uri}', version := 2);"
    done = subprocess.run([cli, "-unsigned", "-csv", "-noheader", "-c", sql], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [f"150,{sum(range(150))}"]
    missing = tmp_path / "missing"
    done = subprocess.run(
        [cli, "-unsigned", "-c", f"LOAD '{extension}'; SELECT * FROM vlake_scan('{missing}');"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "vlake: not found" in done.stderr + done.stdout
    assert done.returncode in (0, 1)  # an error, not a crash (a signal gives a negative code)


def test_vlake_paths_are_tables(con, tmp_path):
    """A path ending in `.vlake` is a table name (the replacement scan reads it with vlake_scan);
    other names are left to DuckDB."""
    t = vlake.write_table(small(120), str(tmp_path / "words.vlake"))
    t = t.delete("id >= 100")
    path = tmp_path / "words.vlake"
    assert con.execute(f"SELECT count(*), sum(id) FROM '{path}'").fetchone() == (100, sum(range(100)))
    assert con.execute(f"SELECT count(*) FROM '{path}/' WHERE pos = 'n'").fetchone()[0] == 50
    missing = tmp_path / "missing.vlake"
    with pytest.raises(duckdb.Error, match="vlake"):
        con.execute(f"SELECT * FROM '{missing}'").fetchall()
    with pytest.raises(duckdb.Error) as other:
        con.execute(f"SELECT * FROM '{tmp_path / 'nothing.csv'}'").fetchall()
    assert "vlake:" not in str(other.value)


def test_full_text_search_equals_vlake(con, tmp_path):
    """vlake_fts and vlake_hybrid rank as vlake's own searches do (a full-text index over the
    first file, the appended file analyzed at query time), with filters, projection and errors."""
    docs = pa.table(
        {
            "id": pa.array(range(6), pa.int64()),
            "text": [
                "the quick brown fox",
                "a lazy dog sleeps",
                "quick quick fox jumps",
                "foxes and dogs",
                "nothing here",
                "brown bread",
            ],
        }
    )
    docs = docs.append_column("vec", pa.array([[float(i), 1.0] for i in range(6)], pa.list_(pa.float32(), 2)))
    t = vlake.write_table(docs, str(tmp_path / "docs")).create_index("text", type="fts")
    more = {"id": pa.array([6], pa.int64()), "text": ["the fox is quick and brown"]}
    t = t.append(pa.table({**more, "vec": pa.array([[6.0, 1.0]], pa.list_(pa.float32(), 2))}))
    for query in ["quick fox", '"brown fox" OR bread', "fox AND NOT jumps"]:
        expected = t.full_text_search(query, "text", k=10)
        rows = con.execute(f"SELECT id, _score FROM vlake_fts('{t.uri}', 'text', ?, 10)", [query]).fetchall()
        assert [r[0] for r in rows] == expected.column("id").to_pylist(), query
        assert [r[1] for r in rows] == pytest.approx(expected.column("_score").to_pylist())
    rows = con.execute(f"SELECT id, text FROM vlake_fts('{t.uri}', 'text', 'fox', 10, filter := 'id > 2')").fetchall()
    assert {r[0] for r in rows} == {3, 6} and all("fox" in r[1] for r in rows)
    assert con.execute(f"SELECT count(*) FROM vlake_fts('{t.uri}', 'text', 'fox', 2)").fetchone()[0] == 2
    with pytest.raises(duckdb.Error, match="vlake"):
        con.execute(f"SELECT * FROM vlake_fts('{t.uri}', 'nope', 'fox', 3)").fetchall()
    with pytest.raises(duckdb.Error, match="vlake"):
        con.execute(f"SELECT * FROM vlake_fts('{t.uri}', 'text', '\"open', 3)").fetchall()

    # Hybrid: both fusions, as vlake's own.
    q = [5.0, 1.0]
    for fusion, extra in [("rrf", ""), ("weighted", ", vector_weight := 0.3")]:
        expected = t.hybrid_search(q, "quick fox", k=4, fusion=fusion, vector_weight=0.3 if extra else None)
        sql = f"SELECT id, _score FROM vlake_hybrid('{t.uri}', 'vec', ?, 'text', 'quick fox', 4, fusion := '{fusion}'{extra})"
        rows = con.execute(sql, [q]).fetchall()
        assert [r[0] for r in rows] == expected.column("id").to_pylist(), fusion
        assert [r[1] for r in rows] == pytest.approx(expected.column("_score").to_pylist())
    with pytest.raises(duckdb.Error, match="vlake"):
        con.execute(f"SELECT * FROM vlake_hybrid('{t.uri}', 'vec', [1, 2, 3], 'text', 'fox', 3)").fetchall()
    with pytest.raises(duckdb.Error, match="fusion"):
        con.execute(f"SELECT * FROM vlake_hybrid('{t.uri}', 'vec', [1, 2], 'text', 'fox', 3, fusion := 'max')").fetchall()


def test_as_of_and_columns(con, tmp_path):
    """`as_of :=` reads the newest version committed at or before an instant; `columns :=`
    declares only the columns named, in that order."""
    t = vlake.write_table(small(10), str(tmp_path / "t"))
    for i in range(1, 3):
        time.sleep(0.02)
        t = t.append(small(10, start=i * 10))
    q = [0.0, 1.0, 2.0, 3.0]
    for v in t.versions():
        got = con.execute(f"SELECT count(*) FROM vlake_scan('{t.uri}', as_of := ?)", [v["timestamp"]]).fetchone()
        assert got[0] == 10 * v["version"], v
        sql = f"SELECT count(*) FROM vlake_search('{t.uri}', 'vector', ?, 100, as_of := ?)"
        assert con.execute(sql, [q, v["timestamp"]]).fetchone()[0] == 10 * v["version"]
    got = con.execute(f"SELECT * FROM vlake_scan('{t.uri}', columns := ['pos', 'id']) ORDER BY id LIMIT 2")
    assert [d[0] for d in got.description] == ["pos", "id"]
    assert got.fetchall() == [("n", 0), ("v", 1)]


def test_search_batch_equals_single_searches(con, history):
    """vlake_search_batch answers each query as vlake_search does, with `_query` numbering the
    queries from 1; the queries can come from a table, through a variable."""
    uri = history.uri
    queries = [[20.0, 21.0, 22.0, 23.0], [100.0, 101.0, 102.0, 103.0], [0.0, 0.0, 0.0, 1.0]]
    opts = "metric := 'l2', filter := 'pos = ''n'''"
    rows = con.execute(
        f"SELECT _query, id, _distance FROM vlake_search_batch('{uri}', 'vector', ?, 4, {opts})", [queries]
    ).fetchall()
    for i, q in enumerate(queries, start=1):
        single = con.execute(f"SELECT id, _distance FROM vlake_search('{uri}', 'vector', ?, 4, {opts})", [q]).fetchall()
        assert [(r[1], r[2]) for r in rows if r[0] == i] == single
    con.execute(
        "CREATE TABLE q AS SELECT * FROM (VALUES (1, [20.0, 21, 22, 23]::FLOAT[4]), (2, [0.0, 0, 0, 1]::FLOAT[4])) v(qid, vec)"
    )
    # DuckDB refuses subqueries in table-function arguments; a variable carries them instead
    # (as lists: DuckDB 1.5.6 hands nested FLOAT[n] values over uncast).
    con.execute("SET VARIABLE queries = (SELECT list(vec::DOUBLE[] ORDER BY qid) FROM q)")
    got = con.execute(
        f"SELECT q.qid, r.id FROM vlake_search_batch('{uri}', 'vector', getvariable('queries'), 1,"
        " metric := 'l2') r JOIN q ON q.qid = r._query ORDER BY q.qid"
    ).fetchall()
    assert got == [(1, 20), (2, 10)]


def test_dev_search_batch_recall(con, dev_table, dev_queries):
    """Batch KNN over every dev query keeps recall@10 >= 0.95."""
    queries = dev_queries.to_pylist()
    rows = con.execute(
        f"SELECT _query, id FROM vlake_search_batch('{dev_table.uri}', 'vector', ?, 10)", [[q["vector"] for q in queries]]
    ).fetchall()
    found = {}
    for i, id_ in rows:
        found.setdefault(i, set()).add(id_)
    assert len(found) == len(queries)
    recall = [len(found[i + 1] & set(q["gt"][:10])) / 10 for i, q in enumerate(queries)]
    assert sum(recall) / len(recall) >= 0.95


def versions(uri):
    return [v["version"] for v in vlake.open(uri).versions()]


def test_copy_writes_one_version_per_statement(con, history, tmp_path):
    """COPY ... TO (FORMAT vlake) creates, appends to and overwrites a table, one version per
    statement; the query's columns map by position to COLUMNS or to the table's columns, with
    values cast to the table's types."""
    uri = str(tmp_path / "copy")
    con.execute(
        f"COPY (SELECT id, pos, vector FROM vlake_scan('{history.uri}')) TO '{uri}' (FORMAT vlake, COLUMNS 'id, pos, vector')"
    )
    assert versions(uri) == [1]
    assert vlake.open(uri).to_arrow().sort_by("id").equals(history.to_arrow().sort_by("id"))
    # Append: INTEGER ids and DOUBLE[4] vectors are cast to the table's BIGINT and FLOAT[4].
    con.execute(
        f"COPY (SELECT i::INTEGER, 'x', [i, i, i, i]::DOUBLE[4] FROM range(1000, 1100) r(i))"
        f" TO '{uri}' (FORMAT vlake, MODE 'append')"
    )
    assert versions(uri) == [1, 2]
    got = con.execute(f"SELECT count(*), sum(vector[2]) FROM vlake_scan('{uri}') WHERE pos = 'x'").fetchone()
    assert got == (100, sum(range(1000, 1100)))
    assert vlake.open(uri).count_rows() == 240
    # Overwrite with other (named) columns: a new schema, in one version.
    con.execute(f"COPY (SELECT i AS k FROM range(7) r(i)) TO '{uri}' (FORMAT vlake, MODE 'overwrite', COLUMNS 'k')")
    assert versions(uri) == [1, 2, 3]
    assert ids(con, f"SELECT k FROM vlake_scan('{uri}')") == list(range(7))
    assert ids(con, f"SELECT id FROM vlake_scan('{uri}', version := 2)")[:3] == [10, 11, 12]


def test_failed_copy_commits_nothing(con, history, tmp_path):
    """A COPY that fails, midway or at bind, makes no version and leaves no files behind."""
    uri = history.uri
    before = versions(uri)
    files = sorted(p for p in pathlib.Path(uri).rglob("*") if p.is_file())
    with pytest.raises(duckdb.Error, match="boom"):
        con.execute(
            "COPY (SELECT CASE WHEN i < 50000 THEN i ELSE error('boom') END, 'n', [0, 0, 0, 0]::FLOAT[4]"
            f" FROM range(100000) r(i)) TO '{uri}' (FORMAT vlake, MODE 'append')"
        )
    for sql, message in [
        (f"COPY (SELECT 1) TO '{uri}' (FORMAT vlake)", "exists"),
        (f"COPY (SELECT 1, 2) TO '{uri}' (FORMAT vlake, MODE 'append')", "COLUMNS"),
        (f"COPY (SELECT 'x', 'n', [0, 0, 0, 0]::FLOAT[4]) TO '{uri}' (FORMAT vlake, MODE 'append')", "id"),
        (f"COPY (SELECT 1, 2) TO '{uri}' (FORMAT vlake, MODE 'append', COLUMNS 'id')", "COLUMNS"),
        (f"COPY (SELECT 1) TO '{uri}' (FORMAT vlake, MODE 'sideways')", "vlake"),
        (f"COPY (SELECT 1) TO '{uri}' (FORMAT vlake, SHARDS 3)", "unknown COPY option"),
        (f"COPY (SELECT 1) TO '{tmp_path / 'new'}' (FORMAT vlake)", "COLUMNS"),
    ]:
        with pytest.raises(duckdb.Error, match=message):
            con.execute(sql)
    assert versions(uri) == before
    assert vlake.open(uri).count_rows() == 140
    assert sorted(p for p in pathlib.Path(uri).rglob("*") if p.is_file()) == files
    assert not (tmp_path / "new").exists()


def test_copy_round_trips_types(con, tmp_path):
    """Every mapped type, with NULLs, survives DuckDB -> vlake -> DuckDB."""
    query = """
        SELECT i AS id, (i % 100)::TINYINT AS i8, i::SMALLINT AS i16, i::INTEGER AS i32, (i % 200)::UTINYINT AS u8,
               i::UBIGINT AS u64, i / 3 AS f64, (i / 4)::REAL AS f32,
               CASE WHEN i % 3 = 0 THEN NULL ELSE 'word ' || i END AS s, ('blob' || i)::BLOB AS b,
               i % 2 = 0 AS flag, DATE '2024-01-01' + i::INTEGER AS d,
               TIMESTAMP '2024-01-01 00:00:00' + INTERVAL (i) SECOND AS ts,
               TIMESTAMPTZ '2024-01-01 00:00:00+00' + INTERVAL (i) MINUTE AS tstz,
               (i / 7)::DECIMAL(9, 2) AS dec9, (i * 1000.5)::DECIMAL(20, 4) AS dec20,
               CASE WHEN i % 5 = 0 THEN NULL ELSE range(i % 4) END AS ints,
               {'a': i, 'b': 'x' || i} AS st,
               (CASE WHEN i % 6 = 0 THEN NULL ELSE [i, i + 0.5, -i] END)::FLOAT[3] AS vec,
               CASE WHEN i % 4 = 0 THEN NULL ELSE ['p' || i, NULL] END AS strs
        FROM range(3000) r(i) WHERE i % 250 <> 7
    """
    names = [d[0] for d in con.execute(query + " LIMIT 0").description]
    uri = str(tmp_path / "types")
    con.execute(f"COPY ({query}) TO '{uri}' (FORMAT vlake, COLUMNS '{', '.join(names)}')")
    expected = con.execute(query + " ORDER BY id").fetchall()
    got = con.execute(f"SELECT {', '.join(names)} FROM vlake_scan('{uri}') ORDER BY id").fetchall()
    assert got == expected
