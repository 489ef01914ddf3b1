"""Round trips with pandas, polars and DuckDB, and the Arrow stream protocol."""

import pyarrow as pa
import pytest

import vlake
from conftest import small


def test_pandas_round_trip(tmp_path):
    pd = pytest.importorskip("pandas")
    np = pytest.importorskip("numpy")
    df = pd.DataFrame(
        {
            "id": np.arange(6, dtype="int64"),
            "word": ["a", "b", None, "d", "e", "f"],
            "score": [0.5, 1.5, np.nan, 3.0, 4.0, 5.0],
            "vector": [np.array([i, i + 1, i + 2], dtype="float64") for i in range(6)],
        }
    )
    t = vlake.write_table(df, str(tmp_path / "t"))
    # Lists of floats of one length become a vector column.
    assert t.schema.field("vector").type == pa.list_(pa.float32(), 3)
    back = t.to_pandas().sort_values("id").reset_index(drop=True)
    assert back["id"].tolist() == list(range(6))
    assert back["word"].tolist()[:2] == ["a", "b"] and back["word"].isna().tolist()[2]
    assert back["vector"][4].tolist() == [4.0, 5.0, 6.0]
    hits = t.search([4.0, 5.0, 6.0]).metric("l2").limit(2).to_pandas()
    assert hits["id"].tolist()[0] == 4
    # Appending a DataFrame casts it to the table's schema.
    t2 = t.append(df.assign(id=df["id"] + 10))
    assert t2.count_rows() == 12


def test_polars_round_trip(tmp_path):
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"id": [1, 2, 3], "pos": ["n", "v", "n"], "vector": [[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]})
    t = vlake.write_table(df, str(tmp_path / "t"))
    assert t.schema.field("vector").type == pa.list_(pa.float32(), 2)
    out = t.to_polars().sort("id")
    assert out["id"].to_list() == [1, 2, 3]
    assert out.filter(pl.col("pos") == "n").height == 2
    # polars reads the table itself through the Arrow stream protocol (pl.from_arrow of a
    # stream gives a Series of structs by polars' design; pl.DataFrame gives the frame).
    direct = pl.DataFrame(t)
    assert direct.columns == ["id", "pos", "vector"] and sorted(direct["id"].to_list()) == [1, 2, 3]
    assert pl.from_arrow(t).len() == 3
    found = t.search([0.3, 0.4]).metric("l2").limit(1).to_polars()
    assert found["id"].to_list() == [2]


def test_duckdb_reads_and_writes(tmp_path):
    duckdb = pytest.importorskip("duckdb")
    t = vlake.write_table(small(100), str(tmp_path / "t"))
    # DuckDB scans the vlake table through __arrow_c_stream__.
    counts = duckdb.sql("SELECT pos, count(*) AS n FROM t GROUP BY pos ORDER BY pos").fetchall()
    assert counts == [("n", 50), ("v", 50)]
    nearest = duckdb.sql(
        "SELECT id FROM t ORDER BY array_distance(vector, [10, 11, 12, 13]::FLOAT[4]) LIMIT 1"
    ).fetchall()
    assert nearest == [(10,)]
    # A DuckDB result is written as a vlake table.
    rel = duckdb.sql("SELECT id * 2 AS id, pos FROM t WHERE id < 10")
    u = vlake.write_table(rel, str(tmp_path / "u"))
    assert sorted(u.to_arrow().column("id").to_pylist()) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_arrow_stream_protocol(tmp_path):
    t = vlake.write_table(small(20), str(tmp_path / "t"))
    assert hasattr(t, "__arrow_c_stream__")
    table = pa.table(t)
    assert table.num_rows == 20 and table.schema == t.schema
    reader = pa.RecordBatchReader.from_stream(t)
    assert reader.read_all().num_rows == 20
    # And vlake writes anything that speaks the protocol.
    u = vlake.write_table(reader_source(table), str(tmp_path / "u"))
    assert u.num_rows == 20


class reader_source:
    """A minimal object exposing only __arrow_c_stream__."""

    def __init__(self, table):
        self.table = table

    def __arrow_c_stream__(self, requested_schema=None):
        return self.table.__arrow_c_stream__(requested_schema)
