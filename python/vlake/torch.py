"""A PyTorch ``IterableDataset`` over a vlake table.

``import vlake`` never imports torch; importing this module does. Each data file of the table
version is one unit of work: files are shuffled per epoch (``shuffle=True``) and shared out
among DataLoader workers (and among distributed ranks when ``torch.distributed`` is
initialised), so every row is read exactly once per epoch::

    from vlake.torch import TableDataset
    ds = TableDataset(vlake.open("/data/words"), columns=["id", "vector"], batch_size=256, shuffle=True)
    for batch in torch.utils.data.DataLoader(ds, batch_size=None, num_workers=4):
        batch["vector"]  # a float32 tensor of shape (rows, dim)
"""

from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence

import pyarrow as pa
import torch
from torch.utils.data import IterableDataset, get_worker_info

from . import Table
from .shards import TableShards


def _to_torch(batch: pa.RecordBatch) -> Dict[str, Any]:
    """Numeric and vector columns as tensors; other columns as Python lists."""
    out: Dict[str, Any] = {}
    for name, column in zip(batch.schema.names, batch.columns):
        t = column.type
        if pa.types.is_fixed_size_list(t) and column.null_count == 0:
            dim = t.list_size
            values = column.flatten().to_numpy(zero_copy_only=False)
            out[name] = torch.from_numpy(values.reshape(len(column), dim).copy())
        elif (pa.types.is_integer(t) or pa.types.is_floating(t)) and column.null_count == 0:
            out[name] = torch.from_numpy(column.to_numpy(zero_copy_only=False).copy())
        else:
            out[name] = column.to_pylist()
    return out


class TableDataset(IterableDataset):
    """Batches of a table version as dicts of tensors (see the module docs).

    ``collate`` turns each pyarrow RecordBatch into what the loop receives (default: a dict of
    tensors for numeric and vector columns, lists for the rest). Call :meth:`set_epoch` between
    epochs to get a new file order when shuffling.
    """

    def __init__(
        self,
        table: Table,
        columns: Optional[Sequence[str]] = None,
        batch_size: int = 1024,
        filter: Optional[str] = None,
        shuffle: bool = False,
        seed: int = 0,
        collate: Any = _to_torch,
    ):
        super().__init__()
        self.shards = TableShards(table, columns=columns, batch_size=batch_size, filter=filter, shuffle=shuffle, seed=seed)
        self.collate = collate

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose file order the next iteration uses."""
        self.shards.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        rank, world = 0, 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        for batch in self.shards.batches(rank * workers + worker, world * workers):
            yield self.collate(batch)

    def __len__(self) -> int:
        return self.shards.num_batches_hint()


__all__: List[str] = ["TableDataset"]
