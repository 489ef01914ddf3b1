"""Type stubs of the native module. Use the `vlake` package's API; this module is its engine."""

from typing import Any, Iterator, List, Optional, Sequence, Tuple

import pyarrow as pa

class BatchIter(Iterator[pa.RecordBatch]):
    """Batches of a running scan (through the Arrow C Data Interface)."""

    @property
    def schema(self) -> pa.Schema: ...
    def reader(self) -> pa.RecordBatchReader: ...
    def __iter__(self) -> "BatchIter": ...
    def __next__(self) -> pa.RecordBatch: ...

class RawBlob:
    """One BLOB value opened for ranged reads."""

    @property
    def size(self) -> int: ...
    def read_at(self, offset: int, n: int) -> bytes: ...

class RawTable:
    """One version of a vlake table."""

    @staticmethod
    def open(
        uri: str, version: Optional[int] = None, timestamp_ms: Optional[int] = None, tag: Optional[str] = None
    ) -> "RawTable": ...
    @staticmethod
    def write(
        uri: str, mode: str, data: Any, primary_key: Optional[List[str]] = None
    ) -> "RawTable": ...
    @property
    def uri(self) -> str: ...
    @property
    def pinned(self) -> bool: ...
    def stage(self, data: Any, mode: str) -> str: ...
    def commit_staged(self, writes: List[str]) -> "RawTable": ...
    def abort_staged(self, writes: List[str]) -> None: ...
    @property
    def version(self) -> int: ...
    @property
    def num_rows(self) -> int: ...
    @property
    def schema(self) -> pa.Schema: ...
    def info_json(self) -> str: ...
    def versions_json(self) -> str: ...
    def tags_json(self) -> str: ...
    def indexes_json(self) -> str: ...
    def create_tag(self, name: str, version: int) -> None: ...
    def delete_tag(self, name: str) -> None: ...
    def checkout(
        self, version: Optional[int] = None, timestamp_ms: Optional[int] = None, tag: Optional[str] = None
    ) -> "RawTable": ...
    def restore(self) -> "RawTable": ...
    def cleanup(self, older_than_s: float) -> str: ...
    def delete(self, filter: str) -> "RawTable": ...
    def merge_insert(
        self,
        data: Any,
        on: Optional[List[str]] = None,
        when_matched: str = "update",
        when_not_matched: str = "insert",
        when_not_matched_by_source: str = "keep",
    ) -> Tuple["RawTable", str]: ...
    def alter_schema(self, changes: str, fields: pa.Schema) -> "RawTable": ...
    @property
    def primary_key(self) -> List[str]: ...
    def update(self, assignments: str, filter: Optional[str] = None) -> "RawTable": ...
    def compact(
        self, target_rows_per_file: Optional[int] = None, blob_garbage_ratio: Optional[float] = None
    ) -> Tuple["RawTable", str]: ...
    def optimize(self, older_than_s: Optional[float] = None) -> Tuple["RawTable", str]: ...
    def scan(
        self,
        columns: Optional[Sequence[str]] = None,
        filter: Optional[str] = None,
        limit: Optional[int] = None,
        with_row_id: bool = False,
        batch_size: Optional[int] = None,
        blobs: str = "descriptors",
    ) -> BatchIter: ...
    def append_blobs(self, column: str, paths: Sequence[str], rows: Any = None) -> "RawTable": ...
    def open_blob(self, row_id: int, column: str) -> "RawBlob": ...
    def take_blobs(self, row_ids: Sequence[int], column: str) -> pa.Array: ...
    def count_rows(self, filter: Optional[str] = None) -> int: ...
    def scan_tasks(
        self, columns: Optional[Sequence[str]] = None, filter: Optional[str] = None, batch_size: Optional[int] = None
    ) -> List[str]: ...
    def create_index(
        self,
        column: str,
        index_type: str,
        metric: Optional[str] = None,
        name: Optional[str] = None,
        partitions: Optional[int] = None,
        subvectors: Optional[int] = None,
        m: Optional[int] = None,
        ef_construction: Optional[int] = None,
        analyzer: Optional[str] = None,
    ) -> "RawTable": ...
    def update_index(self, name: str) -> "RawTable": ...
    def search(
        self,
        column: Optional[str],
        vector: bytes,
        k: int = 10,
        metric: Optional[str] = None,
        nprobes: Optional[int] = None,
        ef: Optional[int] = None,
        refine: Optional[int] = None,
        filter: Optional[str] = None,
        prefilter: bool = True,
        exact: bool = False,
        columns: Optional[Sequence[str]] = None,
        fallback_to_exact: bool = False,
        max_distance: Optional[float] = None,
    ) -> pa.RecordBatch: ...
    def full_text_search(
        self,
        column: Optional[str],
        query: str,
        k: int = 10,
        filter: Optional[str] = None,
        columns: Optional[Sequence[str]] = None,
        snippet: bool = False,
        k1: float = 1.2,
        b: float = 0.75,
        max_expansions: int = 50,
        index: Optional[str] = None,
    ) -> pa.RecordBatch: ...
    def hybrid_search(
        self,
        vector_column: Optional[str],
        vector: bytes,
        text_column: Optional[str],
        text: str,
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
    ) -> pa.RecordBatch: ...

def run_task(uri: str, task: str) -> BatchIter: ...
def sql(query: str, tables: Sequence[Tuple[str, RawTable]]) -> pa.Table: ...
def analyze(text: str, analyzer: Optional[str] = None) -> List[str]: ...
