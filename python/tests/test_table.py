"""Tables from Python: writes, reads, versions, time travel, tags, errors."""

import datetime as dt
import multiprocessing
import time

import pyarrow as pa
import pytest

import vlake
from conftest import small


def test_write_open_and_read(tmp_path):
    uri = str(tmp_path / "t")
    t = vlake.write_table(small(100), uri)
    assert t.version == 1 and t.num_rows == 100 and len(t) == 100
    assert t.uri.endswith("t")
    assert t.schema.field("vector").type == pa.list_(pa.float32(), 4)
    again = vlake.open(uri)
    assert again.to_arrow().sort_by("id").equals(small(100))
    assert "version=1" in repr(again)


def test_reads_push_down_columns_filters_and_limits(tmp_path):
    t = vlake.write_table(small(100), str(tmp_path / "t"))
    got = t.to_arrow(columns=["id"], filter="pos = 'n' AND id < 10")
    assert got.column_names == ["id"]
    assert sorted(got.column("id").to_pylist()) == [0, 2, 4, 6, 8]
    assert t.count_rows() == 100
    assert t.count_rows("pos = 'v'") == 50
    assert t.head(3).num_rows == 3
    assert t.to_arrow(limit=7).num_rows == 7
    batches = list(t.to_batches(columns=["id", "pos"], batch_size=16))
    assert all(b.num_rows <= 16 for b in batches)
    assert sum(b.num_rows for b in batches) == 100
    reader = t.to_reader(columns=["id"])
    assert isinstance(reader, pa.RecordBatchReader)
    assert reader.read_all().num_rows == 100
    with_ids = t.to_arrow(columns=["id"], with_row_id=True)
    assert "_rowid" in with_ids.column_names


def test_modes_versions_time_travel_tags_restore(tmp_path):
    uri = str(tmp_path / "t")
    v1 = vlake.write_table(small(10), uri)
    v2 = vlake.write_table(small(5, start=10), uri, mode="append")
    assert (v2.version, v2.num_rows) == (2, 15)
    # The old handle still reads its version.
    assert v1.num_rows == 10
    time.sleep(0.01)
    between = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.01)
    v3 = v2.overwrite(small(3, start=100))
    assert (v3.version, v3.num_rows) == (3, 3)

    versions = v3.versions()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert [v["rows"] for v in versions] == [10, 15, 3]
    assert all(isinstance(v["timestamp"], dt.datetime) for v in versions)

    assert vlake.open(uri, version=1).num_rows == 10
    assert vlake.open(uri, version=between).version == 2
    assert v3.checkout(2).num_rows == 15
    assert v1.latest().version == 3

    v3.create_tag("gold", 2)
    assert v3.tags == {"gold": 2}
    assert vlake.open(uri, version="gold").num_rows == 15
    restored = vlake.open(uri, version="gold").restore()
    assert (restored.version, restored.num_rows) == (4, 15)
    v3.delete_tag("gold")
    assert restored.tags == {}
    report = restored.cleanup(older_than=0)
    # Versions and files younger than the minimum age (an hour) are kept: a writer may need them.
    assert report["versions_removed"] == 0 and report["files_removed"] == 0
    report = restored.cleanup(older_than=0, unsafe_min_file_age=dt.timedelta(0))
    assert report["versions_removed"] == 3
    assert report["files_removed"] > 0 and report["files_kept_recent"] == 0
    assert vlake.open(uri).num_rows == 15


def test_errors_are_typed(tmp_path):
    uri = str(tmp_path / "t")
    t = vlake.write_table(small(10), uri)
    with pytest.raises(vlake.NotFoundError, match="not found"):
        vlake.open(str(tmp_path / "missing"))
    with pytest.raises(vlake.NotFoundError):
        vlake.open(uri, version=9)
    with pytest.raises(vlake.NotFoundError):
        vlake.open(uri, version="no-such-tag")
    with pytest.raises(vlake.AlreadyExistsError):
        vlake.write_table(small(10), uri)
    with pytest.raises(vlake.InvalidInputError, match="(?i)filter"):
        t.to_arrow(filter="pos = = 'n'")
    with pytest.raises(ValueError):  # InvalidInputError is a ValueError too
        t.count_rows("nope(")
    with pytest.raises(vlake.InvalidInputError, match="schema"):
        t.append(pa.table({"other": [1, 2]}))
    with pytest.raises(vlake.InvalidInputError, match="mode"):
        vlake.write_table(small(1), str(tmp_path / "u"), mode="upsert")
    with pytest.raises(vlake.InvalidInputError):
        vlake.write_table(42, str(tmp_path / "u"))
    with pytest.raises(vlake.InvalidInputError):
        vlake.open(uri, version=0)
    assert issubclass(vlake.NotFoundError, LookupError)
    assert issubclass(vlake.ConflictError, vlake.VlakeError)
    # Nothing was lost by the failed writes.
    assert vlake.open(uri).to_arrow().sort_by("id").equals(small(10))


def _append(args):
    uri, start = args
    import vlake as v

    v.write_table(small(50, start=start), uri, mode="append")
    return start


def test_processes_append_at_once(tmp_path):
    uri = str(tmp_path / "t")
    vlake.write_table(small(50), uri)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        pool.map(_append, [(uri, 1000 * (i + 1)) for i in range(8)])
    t = vlake.open(uri)
    assert t.version == 9
    assert [v["version"] for v in t.versions()] == list(range(1, 10))
    ids = sorted(t.to_arrow(columns=["id"]).column("id").to_pylist())
    expected = sorted(list(range(50)) + [s + i for s in range(1000, 9000, 1000) for i in range(50)])
    assert ids == expected


_INHERITED = {}


def _count_in_child(_):
    """Runs in a forked child, on the table the parent opened (the parent's runtime threads are
    gone there)."""
    t = _INHERITED["table"]
    return t.count_rows("pos = 'v'") + len(t.to_arrow(columns=["id"]))


def test_forked_children_read_tables_the_parent_opened(tmp_path):
    # DataLoader workers and multiprocessing pools fork after vlake's runtime has started.
    t = vlake.write_table(small(40), str(tmp_path / "t"))
    assert t.count_rows() == 40
    _INHERITED["table"] = t
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(2) as pool:
        got = pool.map_async(_count_in_child, range(3)).get(timeout=60)
    assert got == [60, 60, 60]


def test_scan_shards_cover_every_row_once(tmp_path):
    from vlake.shards import TableShards

    uri = str(tmp_path / "t")
    t = vlake.write_table(small(30), uri)
    for i in range(1, 6):
        t = t.append(small(30, start=100 * i))
    shards = TableShards(t, columns=["id"], batch_size=8, shuffle=True, seed=7)
    seen = []
    for shard in range(3):
        for batch in shards.batches(shard, 3):
            assert batch.num_rows <= 8
            seen.extend(batch.column("id").to_pylist())
    assert sorted(seen) == sorted(t.to_arrow(columns=["id"]).column("id").to_pylist())
    first = shards.tasks(0, 1)
    shards.epoch = 1
    assert sorted(shards.tasks(0, 1)) == sorted(first)
    assert shards.tasks(0, 1) != first  # another file order (6 files: 1 in 720 to collide)


def test_torch_dataset(tmp_path):
    torch = pytest.importorskip("torch")
    from vlake.torch import TableDataset

    t = vlake.write_table(small(40), str(tmp_path / "t"))
    t = t.append(small(40, start=40))
    ds = TableDataset(t, columns=["id", "vector"], batch_size=16, shuffle=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=None, num_workers=2)
    ids = []
    for batch in loader:
        assert batch["vector"].dtype == torch.float32 and batch["vector"].shape[1] == 4
        ids.extend(batch["id"].tolist())
    assert sorted(ids) == list(range(80))


def test_delete_update_compact_optimize(tmp_path):
    uri = str(tmp_path / "t")
    t = vlake.write_table(small(100), uri)
    t = t.append(small(100, start=100))
    t = t.create_index("vector", metric="l2")
    indexed = t.version
    d = t.delete("id < 10 OR id >= 190")
    assert d is t and (d.version, d.num_rows) == (indexed + 1, 180)
    assert d.count_rows("id < 10") == 0
    # Deleted rows are never found, by exact or index search.
    q = [5.0, 6.0, 7.0, 8.0]
    assert d.search(q).limit(1).to_list()[0]["id"] == 10
    assert d.search(q).exact().limit(1).to_list()[0]["id"] == 10
    u = d.update({"pos": "'x'"}, where="id >= 100 AND id < 105")
    assert sorted(u.to_arrow(filter="pos = 'x'").column("id").to_pylist()) == [100, 101, 102, 103, 104]
    assert u.num_rows == 180
    before = sorted(u.to_arrow(columns=["id"]).column("id").to_pylist())
    c = u.compact()
    assert c.compaction_report["files_removed"] >= 2
    assert sorted(c.to_arrow(columns=["id"]).column("id").to_pylist()) == before
    assert c.search(q).limit(1).to_list()[0]["id"] == 10
    o = c.optimize(older_than=0)
    assert o.num_rows == 180
    with pytest.raises(vlake.InvalidInputError):
        o.delete("id = = 1")
    with pytest.raises(vlake.VlakeError):
        o.update("nope = 1")


def test_handles_follow_their_own_writes_and_pinned_ones_refuse(tmp_path):
    uri = str(tmp_path / "t")
    t = vlake.write_table(small(100), uri)
    # Written as pylance users write it: the handle moves to each version its writes commit.
    assert t.create_index("vector", metric="l2") is t
    assert t.version == 2 and [i["name"] for i in t.indexes] == ["vector_idx"]
    t.append(small(10, start=100))
    t.delete("id < 5")
    assert (t.version, t.num_rows) == (4, 105)
    assert t.search([5.0, 6.0, 7.0, 8.0]).limit(1).to_list()[0]["id"] == 5
    assert not t.pinned

    # A handle at an explicit version keeps reading it and refuses writes, loudly.
    old = t.checkout(2)
    assert old.pinned and "pinned" in repr(old)
    with pytest.raises(ValueError, match="pinned at version 2"):
        old.create_index("vector", metric="l2")
    with pytest.raises(ValueError, match="pinned at version 2"):
        vlake.open(uri, version=2).append(small(1, start=500))
    assert (old.version, old.num_rows) == (2, 100)
    assert vlake.open(uri).version == 4, "the refused writes committed nothing"
    # Restoring a pinned version is the write it exists for; it returns the latest.
    restored = old.restore()
    assert (restored.version, restored.num_rows, old.version) == (5, 100, 2)


def _stage(args):
    uri, start = args
    import vlake as v

    return v.open(uri).stage(small(500, start=start))


def test_writes_staged_by_worker_processes_commit_as_one_version(tmp_path):
    uri = str(tmp_path / "t")
    t = vlake.write_table(small(50), uri)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        staged = pool.map(_stage, [(uri, 1000 * (i + 1)) for i in range(4)])
    assert vlake.open(uri).version == 1, "staging commits nothing"
    t.commit_staged(staged)
    assert (t.version, t.num_rows) == (2, 2050)
    ids = sorted(t.to_arrow(columns=["id"]).column("id").to_pylist())
    assert ids == list(range(50)) + [s + i for s in range(1000, 5000, 1000) for i in range(500)]
    with pytest.raises(vlake.InvalidInputError, match="already part of version 2"):
        t.commit_staged(staged[:1])

    # Aborted writes leave no files behind.
    data = tmp_path / "t" / "data"
    before = sorted(p.name for p in data.iterdir())
    extra = t.stage(small(10, start=9000))
    assert len(list(data.iterdir())) > len(before)
    t.abort_staged([extra])
    assert sorted(p.name for p in data.iterdir()) == before
    assert vlake.open(uri).version == 2
