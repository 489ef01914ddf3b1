"""Splitting a table version's scan into per-file shards, for data loaders and distributed
readers (PyTorch, Ray, Daft). Needs nothing beyond pyarrow."""

from __future__ import annotations

import random
from typing import Iterator, List, Optional, Sequence

import pyarrow as pa

from . import Table, run_task


class TableShards:
    """The data files of one table version as units of work.

    :meth:`tasks` gives shard ``i`` of ``n`` (files shuffled per epoch when ``shuffle``);
    :meth:`batches` reads them. Shards of one epoch are disjoint and together cover every row
    exactly once.
    """

    def __init__(
        self,
        table: Table,
        columns: Optional[Sequence[str]] = None,
        batch_size: int = 1024,
        filter: Optional[str] = None,
        shuffle: bool = False,
        seed: int = 0,
    ):
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.uri = table.uri
        self.num_rows = table.count_rows(filter) if filter else table.num_rows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self._tasks = table.scan_tasks(columns=columns, filter=filter, batch_size=batch_size)

    def tasks(self, shard: int = 0, num_shards: int = 1) -> List[str]:
        """The scan tasks (one per data file) of shard ``shard`` of ``num_shards``."""
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard {shard} is not in 0..{num_shards}")
        order = list(range(len(self._tasks)))
        if self.shuffle:
            random.Random(self.seed * 1_000_003 + self.epoch).shuffle(order)
        return [self._tasks[i] for i in order[shard::num_shards]]

    def batches(self, shard: int = 0, num_shards: int = 1) -> Iterator[pa.RecordBatch]:
        """The record batches of shard ``shard`` of ``num_shards``."""
        for task in self.tasks(shard, num_shards):
            yield from run_task(self.uri, task)

    def num_batches_hint(self) -> int:
        """About how many batches an epoch has (at least one per file)."""
        return max(len(self._tasks), -(-self.num_rows // self.batch_size))


__all__ = ["TableShards"]
