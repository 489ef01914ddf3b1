#!/usr/bin/env python3
"""Reading a vlake table from Ray Data and Daft, through Arrow.

Small tables: hand the table over whole (``vlake.Table`` speaks the Arrow stream protocol).
Large tables: split the scan into per-data-file tasks (`Table.scan_tasks`), which are plain
JSON strings, and let each worker run its own tasks with `vlake.run_task`, so no single
process reads everything.

    pip install ./python "ray[data]" daft
    python3 examples/ray_daft.py /path/to/table
"""
import sys

import pyarrow as pa

import vlake


def with_daft(table: vlake.Table):
    import daft

    df = daft.from_arrow(pa.table(table))  # through __arrow_c_stream__
    return df.where(daft.col("pos") == "n").count_rows()


def with_ray(table: vlake.Table):
    import ray

    ray.init(ignore_reinit_error=True)
    uri = table.uri
    tasks = table.scan_tasks(columns=["id", "pos"])

    def read(row):
        # One data file per task; runs on whichever worker Ray picks.
        return pa.Table.from_batches(list(vlake.run_task(uri, row["task"])))

    ds = ray.data.from_items([{"task": t} for t in tasks]).map_batches(
        lambda batch: pa.concat_tables([read({"task": t}) for t in batch["task"]]),
        batch_format="pyarrow",
        batch_size=1,
    )
    return ds.filter(lambda r: r["pos"] == "n").count()


def main():
    table = vlake.open(sys.argv[1])
    print(f"{table}: {len(table.scan_tasks())} scan tasks")
    try:
        print("daft, nouns:", with_daft(table))
    except ImportError:
        print("daft is not installed")
    try:
        print("ray, nouns:", with_ray(table))
    except ImportError:
        print("ray is not installed")


if __name__ == "__main__":
    main()
