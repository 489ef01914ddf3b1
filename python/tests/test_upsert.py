"""Primary keys, merge_insert and schema evolution through the Python API."""

import multiprocessing

import pyarrow as pa
import pytest

import vlake
from conftest import small


def _scores(t):
    rows = t.to_arrow(columns=["id", "score"]).to_pylist()
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "a key is live twice"
    return {r["id"]: r["score"] for r in rows}


def _scored(ids, score):
    return pa.table({"id": pa.array(ids, pa.int64()), "pos": ["u"] * len(ids), "score": [float(score)] * len(ids)})


def _keyed(tmp_path, n=10):
    data = pa.table({"id": pa.array(range(n), pa.int64()), "pos": ["n"] * n, "score": [0.0] * n})
    return vlake.write_table(data, str(tmp_path / "t"), primary_key="id")


def test_merge_insert_upserts_by_primary_key(tmp_path):
    t = _keyed(tmp_path)
    assert t.primary_key == ["id"]
    u = t.merge_insert(_scored(range(5, 15), 9))
    assert u.merge_report == {"inserted": 5, "updated": 5, "deleted": 0}
    s = _scores(u)
    assert sorted(s) == list(range(15)) and s[7] == 9.0 and s[2] == 0.0
    assert _scores(u.checkout(1)) == {i: 0.0 for i in range(10)}, "the old version is unchanged"
    # Insert-if-not-exists, update-only and replace-by-source.
    n = u.merge_insert(_scored([1, 20], 5), when_matched="nothing")
    assert n.merge_report["inserted"] == 1 and _scores(n)[1] == 0.0
    o = n.merge_insert(_scored([2, 30], 6), when_not_matched="nothing")
    assert 30 not in _scores(o) and _scores(o)[2] == 6.0
    r = o.merge_insert(_scored([0, 1], 7), when_not_matched_by_source="id >= 10")
    assert sorted(_scores(r)) == list(range(10))
    assert r.merge_report == {"inserted": 0, "updated": 2, "deleted": 6}


def test_keys_stay_unique_and_errors_are_typed(tmp_path):
    t = _keyed(tmp_path)
    with pytest.raises(vlake.AlreadyExistsError, match=r"key \(3\)"):
        t.append(_scored([3], 1))
    with pytest.raises(vlake.InvalidInputError, match="given twice"):
        t.merge_insert(_scored([40, 40], 1))
    with pytest.raises(vlake.InvalidInputError, match="primary key"):
        t.update({"id": "id + 1"})
    with pytest.raises(vlake.InvalidInputError, match="when_matched"):
        t.merge_insert(_scored([1], 1), when_matched="replace")
    with pytest.raises(vlake.InvalidInputError, match="cannot be a key"):
        vlake.write_table(small(5), str(tmp_path / "bad"), primary_key="vector")
    plain = vlake.write_table(small(5), str(tmp_path / "plain"))
    with pytest.raises(vlake.InvalidInputError, match="no primary key"):
        plain.merge_insert(small(2))
    merged = plain.merge_insert(small(3, start=4), on="id")
    assert merged.merge_report == {"inserted": 2, "updated": 1, "deleted": 0}
    assert vlake.open(str(tmp_path / "t")).version == 1, "failed writes committed nothing"


def _upsert(args):
    uri, writer = args
    for round_ in range(3):
        start = 5 + (writer * 3 + round_ * 2) % 10
        vlake.open(uri).merge_insert(_scored(range(start, start + 10), writer * 10 + round_))


def test_four_processes_upsert_without_duplicates(tmp_path):
    t = _keyed(tmp_path)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.map(_upsert, [(t.uri, w) for w in range(4)])
    latest = vlake.open(t.uri)
    assert latest.version == 13
    for v in range(1, 14):
        old = latest.checkout(v)
        assert len(_scores(old)) == old.num_rows


def test_schema_evolution(tmp_path):
    t = _keyed(tmp_path)
    a = t.add_columns(
        [pa.field("level", pa.int32(), nullable=False), pa.field("note", pa.string()), pa.field("twice", pa.float64())],
        defaults={"level": 3},
        expressions={"twice": "score * 2 + id"},
    )
    rows = a.to_arrow().to_pylist()
    assert all(r["level"] == 3 and r["note"] is None and r["twice"] == r["id"] for r in rows)
    b = a.alter_column("level", rename="tier", type=pa.int64()).drop_columns("note")
    assert b.schema.names == ["id", "pos", "score", "tier", "twice"]
    assert b.schema.field("tier").type == pa.int64()
    assert b.count_rows("tier = 3") == 10
    c = b.alter_column("pos", nullable=True)
    assert c.schema.field("pos").nullable
    assert [v["operation"] for v in c.versions()][-4:] == ["alter_schema"] * 4
    assert c.checkout(1).to_arrow().schema.names == ["id", "pos", "score"], "old versions keep their schema"
    with pytest.raises(vlake.InvalidInputError, match="only widening"):
        c.alter_column("tier", type=pa.int8())
    with pytest.raises(vlake.InvalidInputError, match="primary key"):
        c.drop_columns("id")
    # A SQL DELETE and UPDATE on the evolved table.
    out = vlake.sql("DELETE FROM t WHERE tier = 3 AND id < 2", tables={"t": c})
    assert out.column("count").to_pylist() == [2]
    out = vlake.sql("UPDATE t SET score = 1.5 WHERE id = 5", tables={"t": vlake.open(c.uri)})
    assert out.column("count").to_pylist() == [1]
    assert _scores(vlake.open(c.uri))[5] == 1.5
