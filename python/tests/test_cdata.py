"""Arrow crosses the Python boundary through the C Data Interface, not as IPC bytes."""

import numpy as np
import pyarrow as pa

import vlake


_DEFAULT_POOL = pa.default_memory_pool()
# Pools stay alive to the end of the process: buffers allocated from one must not outlive it.
_PROXIES = []


def _proxy_pool() -> pa.MemoryPool:
    """A pool counting what is allocated through it, made pyarrow's default."""
    proxy = pa.proxy_memory_pool(_DEFAULT_POOL)
    _PROXIES.append(proxy)
    pa.set_memory_pool(proxy)
    return proxy


def _wide(rows: int, dim: int = 256) -> pa.Table:
    values = pa.array(np.arange(rows * dim, dtype=np.float32))
    return pa.table(
        {
            "id": pa.array(np.arange(rows, dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(values, dim),
        }
    )


def test_writes_borrow_pyarrow_buffers_instead_of_encoding_them(tmp_path):
    """Handing 16 MB of pyarrow data to a write allocates (almost) nothing in pyarrow's memory.

    Through IPC, every batch was first encoded into a ``pa.BufferOutputStream``, allocated
    from pyarrow's default memory pool: at least the size of a batch (here the whole 16 MB
    table, one chunk). Through the C Data Interface the Rust side reads pyarrow's buffers where
    they are (the stream exports pointers), so the pool sees no allocation of that size. The
    pool is swapped for a proxy for the duration of the writes, whose ``max_memory()`` is the
    peak of what was allocated through it."""
    table = _wide(16 * 1024)  # 16 Mi float32 values: 16 MiB of vectors
    data_bytes = table.nbytes
    proxy = _proxy_pool()
    try:
        t = vlake.write_table(table, str(tmp_path / "t"))
        t.append(table)
        t.stage(table)
    finally:
        pa.set_memory_pool(_DEFAULT_POOL)
    assert t.num_rows == 2 * table.num_rows
    assert proxy.max_memory() < data_bytes // 16, (proxy.max_memory(), data_bytes)


def test_reads_are_pyarrow_objects_over_rust_buffers(tmp_path):
    """Scans and searches come back as pyarrow objects over the buffers Rust produced.

    pyarrow decodes an IPC stream zero-copy from the message bytes, so each decoded buffer is
    a slice of the message body (its ``parent`` is that body), and the bytes themselves were a
    copy out of Rust. A buffer imported through the C Data Interface is the producer's memory,
    wrapped as it is: it has no parent. Nothing of the data's size is allocated from pyarrow's
    pool either way, which the proxy pool checks as well."""
    table = _wide(4096)
    t = vlake.write_table(table, str(tmp_path / "t"))
    proxy = _proxy_pool()
    try:
        read = t.to_arrow()
        reader = t.to_reader()
        streamed = reader.read_all()
        found = t.search(np.ones(256, dtype=np.float32)).limit(5).to_arrow()
        batches = list(t.to_batches())
    finally:
        pa.set_memory_pool(_DEFAULT_POOL)
    assert isinstance(reader, pa.RecordBatchReader)
    assert read.equals(table) and streamed.equals(table)
    assert found.num_rows == 5 and sum(b.num_rows for b in batches) == table.num_rows
    for result in (read, streamed, found, pa.Table.from_batches(batches)):
        for column in result.columns:
            for chunk in column.chunks:
                for buffer in chunk.buffers():
                    assert buffer is None or buffer.parent is None, "a slice of an IPC message"
    assert proxy.max_memory() < table.nbytes // 16, (proxy.max_memory(), table.nbytes)


def test_streams_in_and_out_without_reading_all(tmp_path):
    """A write reads a Python generator batch by batch (it is never collected first), and a
    vlake scan can feed another vlake write directly (the C stream read inside the runtime)."""
    seen = []

    def batches():
        for i in range(3):
            seen.append(i)
            yield _wide(10, dim=4).to_batches()[0]

    schema = _wide(1, dim=4).schema
    t = vlake.write_table(pa.RecordBatchReader.from_batches(schema, batches()), str(tmp_path / "a"))
    assert seen == [0, 1, 2] and t.num_rows == 30
    copy = vlake.write_table(t.to_reader(), str(tmp_path / "b"))
    assert copy.to_arrow().equals(t.to_arrow())
    copy.append(t)
    assert copy.num_rows == 60
