"""vlake: a versioned table format for embeddings and the data around them.

Tables live in a directory (or an object store prefix) and every write is a commit that makes a
new version; old versions stay readable (time travel), vector columns can carry ANN indexes, and
SQL runs through DataFusion::

    import vlake
    t = vlake.write_table(pa_table, "/data/words")            # or pandas, polars, a reader
    t = t.create_index("vector", type="hnsw", metric="cosine")
    hits = t.search(query).where("pos = 'n'").limit(10).to_pandas()
    t = t.create_index("gloss", type="fts")                    # full-text (BM25)
    found = t.full_text_search('"domestic dog" OR cat*', column="gloss", snippet=True)
    both = t.hybrid_search(query, "small dog", text_column="gloss")
    counts = vlake.sql("SELECT pos, count(*) FROM w GROUP BY pos", tables={"w": t})
    old = vlake.open("/data/words", version=1)

Arrow data crosses the native boundary through the Arrow C Data Interface (PyCapsule streams):
buffers are shared between pyarrow and the Rust engine, never copied or re-encoded.
"""

from __future__ import annotations

import array as _array
import datetime as _dt
import io
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.compute as pc

from . import _vlake
from .errors import (
    AlreadyExistsError,
    ConflictError,
    CorruptDataError,
    InvalidInputError,
    NotFoundError,
    UnsupportedError,
    VlakeError,
)

__all__ = [
    "Table",
    "BlobFile",
    "blob_field",
    "Search",
    "open",
    "write_table",
    "sql",
    "analyze",
    "cache_stats",
    "clear_cache",
    "set_cache_budgets",
    "VlakeError",
    "ConflictError",
    "NotFoundError",
    "AlreadyExistsError",
    "InvalidInputError",
    "CorruptDataError",
    "UnsupportedError",
]

Version = Union[None, int, str, _dt.datetime]


def _version_args(version: Version) -> Dict[str, Any]:
    if version is None:
        return {}
    if isinstance(version, bool):
        raise InvalidInputError(f"version must be an int, a datetime or a tag name, not {version!r}")
    if isinstance(version, int):
        if version < 1:
            raise InvalidInputError(f"versions start at 1, not {version}")
        return {"version": version}
    if isinstance(version, _dt.datetime):
        when = version if version.tzinfo else version.replace(tzinfo=_dt.timezone.utc)
        return {"timestamp_ms": int(when.timestamp() * 1000)}
    if isinstance(version, str):
        return {"tag": version}
    raise InvalidInputError(f"version must be an int, a datetime or a tag name, not {type(version).__name__}")


def _needs_vectorize(schema: pa.Schema) -> bool:
    """Whether :func:`_vectorize` may change a column of ``schema``."""
    return any(
        t in (pa.string_view(), pa.binary_view())
        or ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type))
        for t in schema.types
    )


def _vectorize(table: pa.Table) -> pa.Table:
    """Variable-length float list columns whose values all have one length become vector
    columns (fixed-size lists of float32), as pandas and polars hand vectors over as lists;
    string and binary views (polars' defaults) become plain strings and binaries."""
    for i, field in enumerate(table.schema):
        t = field.type
        plain = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}.get(t)
        if plain is not None:
            table = table.set_column(i, pa.field(field.name, plain, field.nullable), table.column(i).cast(plain))
            continue
        if not (pa.types.is_list(t) or pa.types.is_large_list(t)) or not pa.types.is_floating(t.value_type):
            continue
        column = table.column(i)
        lengths = pc.list_value_length(column)
        bounds = pc.min_max(lengths)
        lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
        if lo is None or lo != hi or lo == 0:
            continue
        target = pa.list_(pa.field("item", pa.float32()), lo)
        table = table.set_column(i, pa.field(field.name, target, field.nullable), column.cast(target))
    return table


def _reader(data: Any) -> pa.RecordBatchReader:
    """Any Arrow-like input as a RecordBatchReader: pyarrow tables, batches and readers, pandas
    DataFrames, dicts of columns, and anything with ``__arrow_c_stream__`` (polars, DuckDB
    results, ...)."""
    if isinstance(data, pa.RecordBatchReader):
        return data
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, Table):
        return data.to_reader()
    if not isinstance(data, pa.Table):
        if type(data).__module__.startswith("pandas"):
            data = pa.Table.from_pandas(data, preserve_index=False)
        elif hasattr(data, "__arrow_c_stream__"):
            reader = pa.RecordBatchReader.from_stream(data)
            if not _needs_vectorize(reader.schema):
                return reader  # streamed as it is, never read whole
            data = reader.read_all()
        elif isinstance(data, Mapping):
            data = pa.table(dict(data))
        elif isinstance(data, (list, tuple)) and data and isinstance(data[0], pa.RecordBatch):
            data = pa.Table.from_batches(list(data))
        else:
            raise InvalidInputError(
                "data must be a pyarrow Table, RecordBatch or RecordBatchReader, a pandas DataFrame, "
                f"a dict of columns or an object with __arrow_c_stream__, not {type(data).__name__}"
            )
    return _vectorize(data).to_reader()


BLOB_KEY = b"vlake:blob"


def blob_field(name: str, nullable: bool = True) -> pa.Field:
    """A BLOB column: ``large_binary`` values stored out of line in blob files. Write bytes into
    it with :func:`write_table` or stream files with :meth:`Table.append_blobs`; scans return
    descriptors ``{path, offset, size}`` unless asked for ``blobs="bytes"``."""
    return pa.field(name, pa.large_binary(), nullable, metadata={BLOB_KEY: b"true"})


class BlobFile(io.RawIOBase):
    """One BLOB value as a read-only, seekable binary file that reads ranges on demand (a
    large value is never loaded whole): use it with ``shutil.copyfileobj``, PIL, ``zipfile``,
    or wrap it in ``io.BufferedReader``."""

    def __init__(self, raw: "_vlake.RawBlob"):
        super().__init__()
        self._raw = raw
        self._pos = 0

    @property
    def size(self) -> int:
        """The size of the value in bytes."""
        return self._raw.size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}.get(whence)
        if base is None:
            raise ValueError(f"invalid whence {whence}")
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read_at(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = max(self.size - self._pos, 0)
        data = self._raw.read_at(self._pos, size)
        self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)


def _write(
    uri: str, mode: str, reader: pa.RecordBatchReader, primary_key: Optional[Sequence[str]] = None
) -> "_vlake.RawTable":
    return _vlake.RawTable.write(str(uri), mode, reader, _key_list(primary_key))


def _key_list(key: Union[str, Sequence[str], None]) -> Optional[List[str]]:
    if key is None:
        return None
    return [key] if isinstance(key, str) else list(key)


def write_table(
    data: Any, uri: str, mode: str = "create", primary_key: Union[str, Sequence[str], None] = None
) -> "Table":
    """Writes ``data`` to the table at ``uri`` as one commit and returns the new version.

    ``mode`` is ``"create"`` (fail if a table exists), ``"append"`` (add rows; the schema must
    match) or ``"overwrite"`` (replace rows and schema; creates the table if missing). ``data``
    is a pyarrow Table, RecordBatch or RecordBatchReader, a pandas DataFrame, a dict of columns,
    or anything with ``__arrow_c_stream__`` such as a polars DataFrame or a DuckDB result.
    Float list columns of one length become vector columns (fixed-size lists of float32).
    ``primary_key`` (a column name or a list of them) declares the key of a table this write
    creates or overwrites: keys are never null and never live twice, and appends of an existing
    key fail with :class:`AlreadyExistsError`.
    """
    reader = _reader(data)
    if mode == "append":
        existing = open(uri)
        return existing.append(reader)
    return Table(_write(uri, mode, reader, primary_key))


def open(uri: str, version: Version = None) -> "Table":  # noqa: A001 - mirrors builtins.open on purpose
    """Opens the table at ``uri``: the latest version, or ``version`` (a version number, a
    ``datetime`` for the newest version committed at or before it, or a tag name)."""
    return Table(_vlake.RawTable.open(str(uri), **_version_args(version)))


def sql(query: str, tables: Optional[Mapping[str, Union["Table", str]]] = None) -> pa.Table:
    """Runs SQL (DataFusion) over vlake tables and returns the last statement's rows.

    ``tables`` maps names to :class:`Table` objects (queried at their version) or URIs. The
    vector functions ``l2_distance``, ``cosine_distance``, ``inner_product``, the table function
    ``vector_search(table, column, query, k [, filter [, options]])``, ``CREATE EXTERNAL TABLE
    ... STORED AS VLAKE`` and ``INSERT INTO`` are available; ``ORDER BY <distance> LIMIT k``
    runs as an index search.
    """
    registered = []
    for name, t in (tables or {}).items():
        table = t if isinstance(t, Table) else open(t)
        registered.append((name, table._raw))
    return _vlake.sql(query, registered)


class Table:
    """A vlake table. A handle opened at the latest version follows its own writes, as
    pylance's and delta-rs's do: ``t.create_index(...)`` then ``t.search(q)`` uses the new
    index, and every write returns the handle itself. A handle pinned at a version
    (``open(uri, version=...)`` or ``checkout``) keeps reading that version and refuses writes
    (except ``restore``), so that a write is never mistaken for one on the version read."""

    def __init__(self, raw: "_vlake.RawTable"):
        self._raw = raw
        self._schema: Optional[pa.Schema] = None
        #: What the compaction that made this version did (set by ``compact``/``optimize``).
        self.compaction_report: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        pinned = ", pinned" if self.pinned else ""
        return f"vlake.Table(uri={self.uri!r}, version={self.version}, rows={self.num_rows}{pinned})"

    @property
    def pinned(self) -> bool:
        """Whether this handle reads one version (opened with ``version=`` or ``checkout``)."""
        return self._raw.pinned

    def _writable(self) -> None:
        if self.pinned:
            raise ValueError(
                f"this Table is pinned at version {self.version} (opened with version= or checkout) "
                "and does not take writes: write through t.latest(), or restore() this version"
            )

    def _advance(self, raw: "_vlake.RawTable") -> "Table":
        """Moves this handle to ``raw``, the version its own write committed, and returns it."""
        self._raw = raw
        self._schema = None
        self.compaction_report = None
        return self

    def __len__(self) -> int:
        return self.num_rows

    # -- what it is ---------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """Where the table lives."""
        return self._raw.uri

    @property
    def version(self) -> int:
        """This version's number."""
        return self._raw.version

    @property
    def num_rows(self) -> int:
        """Live rows in this version."""
        return self._raw.num_rows

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema."""
        if self._schema is None:
            self._schema = self._raw.schema
        return self._schema

    def versions(self) -> List[Dict[str, Any]]:
        """Every version: ``version``, ``timestamp`` (UTC datetime), ``operation``, ``rows``, ``files``."""
        out = []
        for v in json.loads(self._raw.versions_json()):
            v["timestamp"] = _dt.datetime.fromtimestamp(v.pop("timestamp_ms") / 1000, tz=_dt.timezone.utc)
            out.append(v)
        return out

    @property
    def tags(self) -> Dict[str, int]:
        """Tag names and the versions they point at."""
        return {t["name"]: t["version"] for t in json.loads(self._raw.tags_json())}

    def create_tag(self, name: str, version: Optional[int] = None) -> None:
        """Tags ``version`` (default: this one) as ``name``."""
        self._raw.create_tag(name, self.version if version is None else version)

    def delete_tag(self, name: str) -> None:
        """Deletes the tag ``name``."""
        self._raw.delete_tag(name)

    @property
    def indexes(self) -> List[Dict[str, Any]]:
        """The indexes of this version: name, column, type, metric, covered files, ..."""
        return json.loads(self._raw.indexes_json())

    def info(self) -> Dict[str, Any]:
        """This version's summary, as ``vlake info --json`` prints it: rows, size, schema,
        files, blob files, indexes."""
        return json.loads(self._raw.info_json())

    # -- versions -------------------------------------------------------------------------
    def checkout(self, version: Version = None) -> "Table":
        """Another version of this table: a number, a datetime, a tag, or None for the latest."""
        return Table(self._raw.checkout(**_version_args(version)))

    def latest(self) -> "Table":
        """The newest version of this table."""
        return self.checkout(None)

    def restore(self) -> "Table":
        """Commits this version's contents as the newest version and returns it."""
        return Table(self._raw.restore())

    def cleanup(
        self,
        older_than: Union[_dt.timedelta, float] = _dt.timedelta(days=7),
        *,
        unsafe_min_file_age: Union[_dt.timedelta, float, None] = None,
    ) -> Dict[str, int]:
        """Removes versions older than ``older_than`` (never the latest or tagged ones) and the
        files only they used, once those are also older than the minimum age (one hour), which
        protects writes in flight. ``unsafe_min_file_age`` lowers that minimum: only safe when
        nobody is writing to the table."""

        def seconds(age: Union[_dt.timedelta, float]) -> float:
            return age.total_seconds() if isinstance(age, _dt.timedelta) else float(age)

        unsafe = None if unsafe_min_file_age is None else seconds(unsafe_min_file_age)
        return json.loads(self._raw.cleanup(seconds(older_than), unsafe))

    # -- writes ---------------------------------------------------------------------------
    def append(self, data: Any) -> "Table":
        """Appends rows as one commit (rebased over concurrent appends); returns the new version.
        On a table with a primary key this is an insert: an existing key fails it."""
        self._writable()
        return self._advance(_write(self.uri, "append", self._conformed(data)))

    def _conformed(self, data: Any) -> pa.RecordBatchReader:
        """``data`` as a reader of this table's schema (columns selected and cast by name)."""
        reader = _reader(data)
        schema = self.schema
        if reader.schema == schema:
            return reader
        try:
            # Checked on the schema first, so that a mismatch fails before anything is written.
            pa.RecordBatch.from_pylist([], schema=reader.schema).select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, KeyError, ValueError) as e:
            raise InvalidInputError(f"the data does not match the table's schema ({e}); table schema: {schema}") from e
        return pa.RecordBatchReader.from_batches(schema, (b.select(schema.names).cast(schema) for b in reader))

    def overwrite(self, data: Any) -> "Table":
        """Replaces the rows (and schema) in one commit; older versions keep the old rows."""
        self._writable()
        return self._advance(_write(self.uri, "overwrite", _reader(data)))

    @property
    def primary_key(self) -> List[str]:
        """The primary-key columns (empty when the table has none)."""
        return list(self._raw.primary_key)

    def merge_insert(
        self,
        data: Any,
        on: Union[str, Sequence[str], None] = None,
        when_matched: str = "update",
        when_not_matched: str = "insert",
        when_not_matched_by_source: str = "keep",
    ) -> "Table":
        """Upserts ``data`` by key in one commit and returns the new version
        (``merge_report`` holds the rows inserted, updated and deleted).

        The key is the table's primary key, or ``on`` for a table without one.
        ``when_matched``: ``"update"`` (replace the row), ``"nothing"`` or ``"fail"``;
        ``when_not_matched``: ``"insert"`` or ``"nothing"``; ``when_not_matched_by_source``:
        ``"keep"``, ``"delete"`` or an SQL condition choosing the unmatched rows to delete.
        Concurrent upserts never leave two rows with one key: a conflicting commit is matched
        again against the newer version."""
        self._writable()
        reader = self._conformed(data)
        raw, report = self._raw.merge_insert(
            reader,
            _key_list(on),
            when_matched,
            when_not_matched,
            when_not_matched_by_source,
        )
        out = self._advance(raw)
        out.merge_report = json.loads(report)
        return out

    def add_columns(
        self,
        fields: Union[pa.Field, pa.Schema, Sequence[pa.Field]],
        defaults: Optional[Mapping[str, Any]] = None,
        expressions: Optional[Mapping[str, str]] = None,
    ) -> "Table":
        """Adds columns in one commit. Existing rows get nulls, the constant ``defaults[name]``
        (stored once in the schema; no data file is rewritten), or the value of the SQL
        expression ``expressions[name]`` over existing columns (the files are rewritten,
        keeping row ids and indexes)."""
        fields = [fields] if isinstance(fields, pa.Field) else list(fields)
        defaults, expressions = dict(defaults or {}), dict(expressions or {})
        changes = []
        for i, f in enumerate(fields):
            change: Dict[str, Any] = {"op": "add", "field": i}
            if f.name in expressions:
                change["expression"] = expressions[f.name]
            elif f.name in defaults:
                value = defaults[f.name]
                change["default"] = value.isoformat() if hasattr(value, "isoformat") else value
            changes.append(change)
        return self._alter(changes, fields)

    def drop_columns(self, columns: Union[str, Sequence[str]]) -> "Table":
        """Drops columns (metadata only; their field ids are never reused)."""
        return self._alter([{"op": "drop", "column": c} for c in _key_list(columns) or []], [])

    def alter_column(
        self,
        column: str,
        rename: Optional[str] = None,
        type: Optional[pa.DataType] = None,  # noqa: A002
        nullable: Optional[bool] = None,
    ) -> "Table":
        """Renames a column, widens its type (e.g. int32 to int64) or makes it nullable, in
        one commit, without rewriting data files."""
        changes: List[Dict[str, Any]] = []
        fields = []
        if type is not None:
            fields.append(pa.field(column, type))
            changes.append({"op": "widen", "column": column, "field": 0})
        if nullable:
            changes.append({"op": "nullable", "column": column})
        elif nullable is not None:
            raise InvalidInputError("a column can be made nullable, not non-nullable")
        if rename is not None:
            changes.append({"op": "rename", "from": column, "to": rename})
        return self._alter(changes, fields)

    def _alter(self, changes: List[Dict[str, Any]], fields: Sequence[pa.Field]) -> "Table":
        self._writable()
        return self._advance(self._raw.alter_schema(json.dumps(changes), pa.schema(list(fields))))

    def delete(self, where: str) -> "Table":
        """Deletes the rows matching the SQL condition ``where`` in one commit (deletion
        files: data files are not rewritten); returns the new version."""
        self._writable()
        return self._advance(self._raw.delete(where))

    def update(self, set: Union[str, Mapping[str, str]], where: Optional[str] = None) -> "Table":  # noqa: A002
        """Sets columns of the rows matching ``where`` (all rows without it) in one commit.
        ``set`` is ``"score = score * 2, pos = 'n'"`` or ``{"score": "score * 2"}``."""
        if isinstance(set, Mapping):
            set = ", ".join(f"{column} = {value}" for column, value in set.items())
        self._writable()
        return self._advance(self._raw.update(set, where))

    def compact(
        self, target_rows_per_file: Optional[int] = None, blob_garbage_ratio: Optional[float] = None
    ) -> "Table":
        """Merges small files and drops deleted rows, keeping row ids and index coverage;
        returns the new version (``compaction_report`` holds what it did). A blob file is
        rewritten when more than ``blob_garbage_ratio`` (default 0.1) of it belongs to no live
        row."""
        self._writable()
        raw, report = self._raw.compact(target_rows_per_file, blob_garbage_ratio)
        out = self._advance(raw)
        out.compaction_report = json.loads(report)
        return out

    def optimize(self, older_than: Union[_dt.timedelta, float, None] = None) -> "Table":
        """Compaction, then every index brought up to date, then cleanup of versions older
        than ``older_than`` (default 7 days); returns the new version."""
        seconds = older_than.total_seconds() if isinstance(older_than, _dt.timedelta) else older_than
        self._writable()
        raw, report = self._raw.optimize(seconds)
        out = self._advance(raw)
        out.compaction_report = json.loads(report)
        return out

    # -- distributed writes ---------------------------------------------------------------
    def stage(self, data: Any, mode: str = "append") -> str:
        """Writes ``data`` as data files of this table without committing them and returns
        their description (a JSON string) for :meth:`commit_staged`, which may run in another
        process. ``mode``: ``"append"`` (rows conformed to the table's schema) or
        ``"overwrite"`` (their schema becomes the table's). Staged files that are never
        committed are removed by :meth:`abort_staged`, or by cleanup after an hour."""
        self._writable()
        reader = self._conformed(data) if mode == "append" else _reader(data)
        return self._raw.stage(reader, mode)

    def commit_staged(self, writes: Sequence[str]) -> "Table":
        """Commits staged writes (from :meth:`stage` in any process) as one new version,
        rebased over concurrent commits like an append; a staged write is committed once."""
        self._writable()
        return self._advance(self._raw.commit_staged(list(writes)))

    def abort_staged(self, writes: Sequence[str]) -> None:
        """Removes the files of staged writes that will not be committed (never a file a
        committed version uses)."""
        self._raw.abort_staged(list(writes))

    # -- reads ----------------------------------------------------------------------------
    def to_batches(
        self,
        columns: Optional[Sequence[str]] = None,
        filter: Optional[str] = None,
        limit: Optional[int] = None,
        batch_size: Optional[int] = None,
        with_row_id: bool = False,
        blobs: str = "descriptors",
    ) -> Iterator[pa.RecordBatch]:
        """Streams the rows as RecordBatches (projection, SQL filter, limit pushed down). BLOB
        columns hold descriptors, or their values with ``blobs="bytes"``."""
        yield from self._raw.scan(_names(columns), filter, limit, with_row_id, batch_size, blobs)

    def to_reader(
        self,
        columns: Optional[Sequence[str]] = None,
        filter: Optional[str] = None,
        limit: Optional[int] = None,
        batch_size: Optional[int] = None,
    ) -> pa.RecordBatchReader:
        """The rows as a streaming pyarrow RecordBatchReader (a C stream: pyarrow, polars and
        DuckDB read it without the GIL)."""
        return self._raw.scan(_names(columns), filter, limit, False, batch_size).reader()

    def to_arrow(
        self,
        columns: Optional[Sequence[str]] = None,
        filter: Optional[str] = None,
        limit: Optional[int] = None,
        with_row_id: bool = False,
        blobs: str = "descriptors",
    ) -> pa.Table:
        """The rows as a pyarrow Table. ``filter`` is an SQL condition such as ``"pos = 'n'"``.
        BLOB columns hold descriptors ``{path, offset, size}``, or their values with
        ``blobs="bytes"``."""
        it = self._raw.scan(_names(columns), filter, limit, with_row_id, None, blobs)
        return pa.Table.from_batches(list(it), schema=it.schema)

    def to_pandas(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None, **kwargs: Any):
        """The rows as a pandas DataFrame (vectors become numpy arrays)."""
        return self.to_arrow(columns=columns, filter=filter).to_pandas(**kwargs)

    def to_polars(self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None):
        """The rows as a polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow(columns=columns, filter=filter))

    def head(self, n: int = 5, columns: Optional[Sequence[str]] = None) -> pa.Table:
        """The first ``n`` rows."""
        return self.to_arrow(columns=columns, limit=n)

    # -- blobs ----------------------------------------------------------------------------
    def append_blobs(self, column: str, paths: Sequence[Union[str, "os.PathLike[str]"]], data: Any = None) -> "Table":
        """Appends one row per file in ``paths`` as one commit: BLOB column ``column`` gets the
        file's bytes, streamed (files of any size); the other columns come from ``data`` (one
        row per file, any input :func:`write_table` takes) or are null."""
        self._writable()
        rows = None if data is None else _reader(data)
        return self._advance(self._raw.append_blobs(column, [os.fspath(p) for p in paths], rows))

    def open_blob(self, row_id: int, column: str) -> BlobFile:
        """The value of BLOB column ``column`` in row ``row_id`` (see ``with_row_id=True``) as a
        seekable binary file that reads ranges on demand."""
        return BlobFile(self._raw.open_blob(row_id, column))

    def take_blobs(self, row_ids: Sequence[int], column: str) -> pa.Array:
        """The values of BLOB column ``column`` in rows ``row_ids``, in that order (read whole)."""
        return self._raw.take_blobs(list(row_ids), column)

    def count_rows(self, filter: Optional[str] = None) -> int:
        """Rows matching ``filter`` (all live rows without one)."""
        return self._raw.count_rows(filter)

    def scan_tasks(
        self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None, batch_size: Optional[int] = None
    ) -> List[str]:
        """The scan as independent per-data-file tasks (JSON strings) for distributed readers;
        run one anywhere with :func:`vlake.run_task`."""
        return self._raw.scan_tasks(_names(columns), filter, batch_size)

    def __arrow_c_stream__(self, requested_schema: Any = None) -> Any:
        """The Arrow PyCapsule stream protocol: ``pyarrow.table(t)``, ``polars.DataFrame(t)``,
        ``duckdb.sql("SELECT ... FROM t")`` and Daft read the table directly."""
        return self.to_reader().__arrow_c_stream__(requested_schema)

    # -- vectors --------------------------------------------------------------------------
    def create_index(
        self,
        column: str,
        type: str = "hnsw",  # noqa: A002 - the user-facing name
        metric: Optional[str] = None,
        name: Optional[str] = None,
        *,
        partitions: Optional[int] = None,
        subvectors: Optional[int] = None,
        m: Optional[int] = None,
        ef_construction: Optional[int] = None,
        analyzer: Optional[Mapping[str, Any]] = None,
    ) -> "Table":
        """Builds an index on ``column`` and returns the new version.

        Vector indexes: ``type`` is ``"hnsw"`` (``m``, ``ef_construction``), ``"ivf_pq"``
        (``partitions``, ``subvectors``) or ``"ivf_flat"`` (``partitions``); ``metric`` is
        ``"cosine"`` (the default), ``"l2"`` or ``"dot"``. Parameters left out take vlake's
        defaults (as the CLI's ``vlake index create`` does). Full-text: ``type="fts"`` on a string column, with
        ``analyzer`` options (``tokenizer``: ``"unicode"`` or ``"whitespace"``, ``lowercase``,
        ``stop_words`` and ``stemmer``: a language or None, ``max_token_length``).
        """
        self._writable()
        raw = self._raw.create_index(
            column,
            type,
            metric,
            name,
            partitions,
            subvectors,
            m,
            ef_construction,
            None if analyzer is None else json.dumps(dict(analyzer)),
        )
        return self._advance(raw)

    def update_index(self, name: str) -> "Table":
        """Indexes the rows appended since the index ``name`` was built, without retraining."""
        self._writable()
        return self._advance(self._raw.update_index(name))

    def search(self, vector: Any, column: Optional[str] = None) -> "Search":
        """Starts a nearest-neighbour search for ``vector`` (a list, numpy array or pyarrow
        array) in ``column`` (default: the table's only vector column)."""
        return Search(self, vector, column)

    def full_text_search(
        self,
        query: str,
        column: Optional[str] = None,
        k: int = 10,
        *,
        filter: Optional[str] = None,
        columns: Optional[Sequence[str]] = None,
        snippet: bool = False,
        k1: Optional[float] = None,
        b: Optional[float] = None,
        max_expansions: Optional[int] = None,
        index: Optional[str] = None,
    ) -> pa.Table:
        """The ``k`` rows whose string ``column`` (default: the table's only string column) best
        match ``query`` by BM25, best first, with ``_score`` (and ``_snippet``, the text with
        matches in ``<b>`` tags, when ``snippet``). The query syntax: terms, ``"phrases"``,
        ``prefix*``, ``"phrase prefix*"``, ``fuzzy~1``, ``AND``, ``OR``, ``NOT``, ``+``/``-``,
        parentheses. Rows no index covers are analyzed at query time."""
        options = {"k": k, "filter": filter, "columns": _names(columns), "snippet": snippet}
        options.update(k1=k1, b=b, max_expansions=max_expansions, index=index)
        return pa.Table.from_batches([self._raw.full_text_search(column, query, _options(options))])

    def hybrid_search(
        self,
        vector: Any,
        text: str,
        *,
        vector_column: Optional[str] = None,
        text_column: Optional[str] = None,
        k: int = 10,
        filter: Optional[str] = None,
        columns: Optional[Sequence[str]] = None,
        fusion: str = "rrf",
        rrf_k: Optional[float] = None,
        vector_weight: Optional[float] = None,
        candidates: Optional[int] = None,
        metric: Optional[str] = None,
        nprobes: Optional[int] = None,
        ef: Optional[int] = None,
        exact: bool = False,
    ) -> pa.Table:
        """Vector search for ``vector`` and full-text search for ``text`` fused into the ``k``
        best rows, with ``_score``: ``fusion="rrf"`` (reciprocal rank fusion, ``rrf_k``) or
        ``"weighted"`` (min-max normalised scores, ``vector_weight`` for the vector side;
        defaults 60 and 0.5).
        ``filter`` applies to both searches; each contributes ``candidates`` rows (default
        max(50, k))."""
        options = {"k": k, "filter": filter, "columns": _names(columns), "fusion": fusion, "rrf_k": rrf_k}
        options.update(vector_weight=vector_weight, candidates=candidates, metric=metric, nprobes=nprobes, ef=ef)
        options["exact"] = exact
        found = self._raw.hybrid_search(vector_column, _as_floats(vector), text_column, text, _options(options))
        return pa.Table.from_batches([found])


def _names(columns: Optional[Sequence[str]]) -> Optional[List[str]]:
    return None if columns is None else list(columns)


def _options(options: Dict[str, Any]) -> Optional[str]:
    """Search options as the JSON of vlake's options struct (left-out ones take its defaults)."""
    given = {k: v for k, v in options.items() if v is not None}
    return json.dumps(given) if given else None


def cache_stats() -> Dict[str, Dict[str, int]]:
    """The process's table caches (Parquet footers, deletion bitmaps, decoded vectors, index
    segments, full-text corpora, filter results): per cache, ``entries``, ``weight`` (bytes, or
    entries for caches budgeted in entries), ``capacity``, ``hits`` and ``misses``."""
    return json.loads(_vlake.cache_stats())


def clear_cache() -> None:
    """Empties the process's table caches."""
    _vlake.clear_cache()


def set_cache_budgets(
    vector_bytes: Optional[int] = None, metadata_bytes: Optional[int] = None, index_entries: Optional[int] = None
) -> None:
    """Gives tables opened from now on new caches with these budgets (defaults: 2 GiB of decoded
    vectors, 256 MiB of footers and bitmaps, 256 index segments); tables already open keep theirs."""
    _vlake.set_cache_budgets(vector_bytes, metadata_bytes, index_entries)


def analyze(text: str, analyzer: Optional[Mapping[str, Any]] = None) -> List[str]:
    """The index terms vlake's analyzer makes of ``text`` (default analyzer: Unicode words,
    lowercased, English stop words dropped, English Snowball stems), e.g. to compare BM25
    scores with another implementation on the same tokens."""
    return _vlake.analyze(text, None if analyzer is None else json.dumps(dict(analyzer)))


def _as_floats(vector: Any) -> bytes:
    """The query vector as float32 bytes (machine byte order): one conversion, no Python floats
    for a numpy array."""
    try:
        if isinstance(vector, (pa.Array, pa.ChunkedArray)):
            vector = vector.to_numpy(zero_copy_only=False)
        if hasattr(vector, "__array__"):
            import numpy as np

            return np.ascontiguousarray(vector, dtype=np.float32).reshape(-1).tobytes()
        return _array.array("f", [float(x) for x in vector]).tobytes()
    except (TypeError, ValueError) as e:
        raise InvalidInputError(f"the query vector must be a sequence of numbers: {e}") from e


class Search:
    """A vector search being set up; each method returns the search, and ``to_arrow()``,
    ``to_pandas()``, ``to_polars()`` or ``to_list()`` run it."""

    def __init__(self, table: Table, vector: Any, column: Optional[str]):
        self._raw = table._raw
        self._column = column or self._raw.only_vector_column()
        self._vector = _as_floats(vector)
        self._opts: Dict[str, Any] = {}

    def _set(self, **kwargs: Any) -> "Search":
        self._opts.update(kwargs)
        return self

    def where(self, condition: str, prefilter: Optional[bool] = None) -> "Search":
        """Only rows matching the SQL ``condition``; applied before ranking unless
        ``prefilter=False`` (then after, which may return fewer than k rows)."""
        self._opts["filter"] = condition
        if prefilter is not None:
            self._opts["prefilter"] = prefilter
        return self

    def limit(self, k: int) -> "Search":
        """Number of rows to return (default 10)."""
        return self._set(k=int(k))

    def metric(self, metric: str) -> "Search":
        """``"cosine"``, ``"l2"`` or ``"dot"`` (default: the index's metric, else L2)."""
        return self._set(metric=metric)

    def nprobes(self, n: int) -> "Search":
        """IVF partitions to probe (default 20)."""
        return self._set(nprobes=int(n))

    def ef(self, n: int) -> "Search":
        """HNSW candidate list size (default 64)."""
        return self._set(ef=int(n))

    def refine(self, factor: int) -> "Search":
        """IVF-PQ re-ranks ``k * factor`` candidates with exact distances (default 10)."""
        return self._set(refine=int(factor))

    def prefilter(self, yes: bool = True) -> "Search":
        """Filter before ranking (exactly k matching rows when they exist) or after."""
        return self._set(prefilter=bool(yes))

    def exact(self, yes: bool = True) -> "Search":
        """Exact search, ignoring indexes."""
        return self._set(exact=bool(yes))

    def fallback_to_exact(self, yes: bool = True) -> "Search":
        """Search exactly when an index file is missing or corrupt, instead of failing."""
        return self._set(fallback_to_exact=bool(yes))

    def within(self, distance: float) -> "Search":
        """Range search: every row within ``distance`` (at most ``limit`` rows)."""
        return self._set(max_distance=float(distance))

    def select(self, columns: Sequence[str]) -> "Search":
        """The columns to return (``_distance`` is always added)."""
        return self._set(columns=list(columns))

    def to_arrow(self) -> pa.Table:
        """Runs the search: the rows closest first, with ``_distance``."""
        return pa.Table.from_batches([self._raw.search(self._column, self._vector, _options(self._opts))])

    def to_pandas(self, **kwargs: Any):
        """The results as a pandas DataFrame."""
        return self.to_arrow().to_pandas(**kwargs)

    def to_polars(self):
        """The results as a polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.to_arrow())

    def to_list(self) -> List[Dict[str, Any]]:
        """The results as a list of dicts."""
        return self.to_arrow().to_pylist()


def run_task(uri: str, task: str) -> Iterator[pa.RecordBatch]:
    """Runs one task of :meth:`Table.scan_tasks` against the table at ``uri``."""
    yield from _vlake.run_task(uri, task)


__all__.append("run_task")
