"""BLOB columns from Python: bytes in, descriptors or bytes out, file-like streaming reads,
files streamed in by path, and blob files kept exact by delete + compact + cleanup."""

import hashlib
import io
import os
import shutil
import zipfile

import pyarrow as pa
import pytest

import vlake


def value(i: int, n: int) -> bytes:
    """``n`` deterministic bytes for row ``i``."""
    out = bytearray()
    block = 0
    while len(out) < n:
        out += hashlib.sha256(f"{i}:{block}".encode()).digest()
        block += 1
    return bytes(out[:n])


def blob_table(sizes):
    schema = pa.schema([pa.field("id", pa.int64(), False), vlake.blob_field("data")])
    data = [None if s is None else value(i, s) for i, s in enumerate(sizes)]
    return pa.table({"id": list(range(len(sizes))), "data": data}, schema=schema)


def blob_bytes(uri):
    d = os.path.join(uri, "_blobs")
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)) if os.path.isdir(d) else 0


SIZES = [0, 1, None, 500, 3_000_000, 20_000, 7]


def test_bytes_round_trip_as_descriptors_and_values(tmp_path):
    uri = str(tmp_path / "t")
    t = vlake.write_table(blob_table(SIZES), uri)
    assert t.schema.field("data").type == pa.struct(
        [pa.field("path", pa.string()), pa.field("offset", pa.uint64()), pa.field("size", pa.uint64())]
    )
    descriptors = t.to_arrow().sort_by("id").column("data").to_pylist()
    assert [d and d["size"] for d in descriptors] == [0, 1, None, 500, 3_000_000, 20_000, 7]
    values = t.to_arrow(blobs="bytes").sort_by("id").column("data").to_pylist()
    assert values == [None if s is None else value(i, s) for i, s in enumerate(SIZES)]
    assert t.take_blobs([4, 1], "data").to_pylist() == [value(4, 3_000_000), value(1, 1)]
    assert blob_bytes(uri) == sum(s for s in SIZES if s)
    with pytest.raises(vlake.InvalidInputError):
        t.to_arrow(blobs="pixels")


def test_open_blob_is_a_seekable_file(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "first member")
        z.writestr("b.bin", value(9, 100_000))
    schema = pa.schema([pa.field("id", pa.int64(), False), vlake.blob_field("data")])
    t = vlake.write_table(pa.table({"id": [0, 1], "data": [buf.getvalue(), value(1, 2_000_000)]}, schema=schema), str(tmp_path / "t"))
    # zipfile seeks to the end, reads the directory, then seeks back to each member.
    with zipfile.ZipFile(t.open_blob(0, "data")) as z:
        assert z.read("a.txt") == b"first member"
        assert z.read("b.bin") == value(9, 100_000)
    f = t.open_blob(1, "data")
    assert f.readable() and f.seekable() and f.size == 2_000_000
    source = value(1, 2_000_000)
    for at, n in [(0, 10), (1_999_990, 100), (123_457, 700_001), (2_000_000, 5)]:
        assert f.seek(at) == at
        assert f.read(n) == source[at : at + n]
    f.seek(-3, io.SEEK_END)
    assert f.read() == source[-3:] and f.tell() == 2_000_000
    f.seek(0)
    out = io.BytesIO()
    shutil.copyfileobj(io.BufferedReader(f, buffer_size=1 << 16), out)
    assert out.getvalue() == source
    with pytest.raises(vlake.NotFoundError):
        t.open_blob(5, "data")
    with pytest.raises(vlake.InvalidInputError):
        t.open_blob(0, "id")


def test_files_streamed_by_path_and_delete_compact_cleanup(tmp_path):
    uri = str(tmp_path / "t")
    t = vlake.write_table(blob_table(SIZES), uri)
    paths = []
    for i, n in [(10, 9_000_000), (11, 40), (12, 0)]:
        p = tmp_path / f"f{i}.bin"
        p.write_bytes(value(i, n))
        paths.append(p)
    t = t.append_blobs("data", paths, pa.table({"id": [10, 11, 12]}))
    got = dict(zip(*t.to_arrow(blobs="bytes").select(["id", "data"]).to_pydict().values()))
    assert got[10] == value(10, 9_000_000) and got[11] == value(11, 40) and got[12] == b""
    t = t.delete("id IN (4, 10, 1)")
    t = t.compact(blob_garbage_ratio=0.0)
    assert t.compaction_report["blob_files_rewritten"] >= 1
    # Nothing else writes to the table: the minimum file age may be waived.
    t.cleanup(older_than=0, unsafe_min_file_age=0)
    live = {i: value(i, s) for i, s in enumerate(SIZES) if s is not None and i not in (4, 1)}
    live.update({11: value(11, 40), 12: b""})
    got = dict(zip(*t.to_arrow(blobs="bytes").select(["id", "data"]).to_pydict().values()))
    assert {k: v for k, v in got.items() if v is not None} == live
    assert blob_bytes(uri) == sum(len(v) for v in live.values())


def test_sql_sees_descriptors(tmp_path):
    t = vlake.write_table(blob_table(SIZES), str(tmp_path / "t"))
    got = vlake.sql("SELECT id, data['size'] AS size FROM t WHERE data IS NOT NULL ORDER BY id", tables={"t": t})
    assert got.column("size").to_pylist() == [0, 1, 500, 3_000_000, 20_000, 7]
