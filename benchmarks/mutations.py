#!/usr/bin/env python3
"""Mutations against pylance (Lance), in one run on the dev dataset: upsert of 10% of the rows
(half of them existing keys with a new gloss, half new keys) by primary key with
`merge_insert`, and delete of 1% of the rows by predicate. Each timing is the best of three runs on a fresh copy of the
table. Prints seconds, rows/s and ratios (> 1: vlake is faster).

    pip install ./python pylance
    python3 benchmarks/mutations.py [--markdown benchmarks/results/mutations.md]
"""
import argparse
import os
import shutil
import tempfile
import time

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

import vlake

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(ROOT, "..", "shared", "data", "dev")


def timed(make, run, runs=3):
    """Best time of `run(make())` over fresh tables, and the last result."""
    best, out = float("inf"), None
    for _ in range(runs):
        target = make()
        start = time.perf_counter()
        out = run(target)
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    import lance

    data = pq.read_table(os.path.join(DEV, "base.parquet"))
    n = data.num_rows
    # 10% of the rows: 1000 existing ids with a changed gloss and 1000 new ids.
    changed = data.slice(0, n // 20)
    changed = changed.set_column(changed.schema.get_field_index("gloss"), "gloss", pc.utf8_upper(changed.column("gloss")))
    new = data.slice(n // 20, n // 20)
    new = new.set_column(0, "id", pc.add(new.column("id"), 1_000_000_000))
    source = pa.concat_tables([changed, new]).combine_chunks()
    # 1% of the rows, spread over the table: every 100th id.
    doomed = data.column("id").to_pylist()[7::100]
    delete_where = f"id IN ({', '.join(map(str, doomed))})"
    expected_deleted = len(doomed)

    work = tempfile.mkdtemp(prefix="vlake-mut-bench-")
    count = [0]

    def fresh(name):
        count[0] += 1
        return os.path.join(work, f"{name}-{count[0]}")

    def vlake_table():
        return vlake.write_table(data, fresh("v"), primary_key="id")

    def lance_table():
        return lance.write_dataset(data, fresh("l"))

    def lance_upsert(ds):
        ds.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(source)
        return ds

    rows = []
    try:
        v_up, vt = timed(vlake_table, lambda t: t.merge_insert(source))
        l_up, lt = timed(lance_table, lance_upsert)
        assert vt.merge_report == {"inserted": n // 20, "updated": n // 20, "deleted": 0}, vt.merge_report
        assert vt.num_rows == lt.count_rows() == n + n // 20
        rows.append(("upsert 10% (2000 rows)", v_up, l_up, source.num_rows))
        v_del, vd = timed(vlake_table, lambda t: t.delete(delete_where))
        l_del, ld = timed(lance_table, lambda ds: (ds.delete(delete_where), ds)[1])
        assert vd.num_rows == ld.count_rows() == n - expected_deleted
        rows.append(("delete 1% (200 rows)", v_del, l_del, expected_deleted))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        "| operation | vlake s | pylance s | vlake rows/s | pylance rows/s | ratio |",
        "|---|---|---|---|---|---|",
    ]
    for name, v, l, changed_rows in rows:
        lines.append(
            f"| {name} | {v:.3f} | {l:.3f} | {changed_rows / v:,.0f} | {changed_rows / l:,.0f} | {l / v:.2f}x |"
        )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(f"Dev set ({n} rows), pylance {lance.__version__}, best of 3 runs.\n\n{text}\n")


if __name__ == "__main__":
    main()
