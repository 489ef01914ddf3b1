#!/usr/bin/env python3
"""The Python package against pylance (Lance), in one run on the dev dataset: write, full scan
to Arrow, filtered scan, KNN without an index (exact) and with one (HNSW for vlake, IVF_PQ and
IVF_HNSW_SQ for Lance), one query at a time. Prints times, queries/s, recall@10 and ratios.

    pip install ./python pylance
    python3 benchmarks/python_api.py
"""
import argparse
import os
import shutil
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

import vlake

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(ROOT, "..", "shared", "data", "dev")


def best(f, runs=3):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - start)
    return min(times), out


def queries_per_s(run, queries):
    run(queries[0]["vector"])
    hits = 0
    start = time.perf_counter()
    for q in queries:
        hits += len(set(run(q["vector"])) & set(q["gt"][:10]))
    seconds = time.perf_counter() - start
    return len(queries) / seconds, hits / (10 * len(queries))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    import lance

    data = pq.read_table(os.path.join(DEV, "base.parquet"))
    queries = pq.read_table(os.path.join(DEV, "queries.parquet")).slice(0, args.queries).to_pylist()
    work = tempfile.mkdtemp(prefix="vlake-py-bench-")
    rows = {}
    try:
        n = [0]

        def fresh(name):
            n[0] += 1
            return os.path.join(work, f"{name}-{n[0]}")

        rows["write"] = (
            best(lambda: vlake.write_table(data, fresh("v")))[0],
            best(lambda: lance.write_dataset(data, fresh("l")))[0],
        )
        vt = vlake.write_table(data, os.path.join(work, "vt"))
        lt = lance.write_dataset(data, os.path.join(work, "lt"))
        rows["full scan to Arrow"] = (best(lambda: vt.to_arrow())[0], best(lambda: lt.to_table())[0])
        rows["filtered scan (pos = 'v')"] = (
            best(lambda: vt.to_arrow(filter="pos = 'v'"))[0],
            best(lambda: lt.to_table(filter="pos = 'v'"))[0],
        )

        def lance_knn(ds, **kw):
            return lambda v: ds.to_table(
                columns=["id"], nearest={"column": "vector", "q": v, "k": 10, "metric": "cosine", **kw}
            ).column("id").to_pylist()

        def vlake_knn(t, **kw):
            def run(v):
                s = t.search(v).limit(10).select(["id"]).metric("cosine")
                for key, value in kw.items():
                    s = getattr(s, key)(value)
                return s.to_arrow().column("id").to_pylist()

            return run

        knn = {}
        knn["exact"] = (queries_per_s(vlake_knn(vt, exact=True), queries), queries_per_s(lance_knn(lt, use_index=False), queries))
        start = time.perf_counter()
        vi = vt.create_index("vector", type="hnsw", metric="cosine")
        v_build = time.perf_counter() - start
        start = time.perf_counter()
        lt.create_index("vector", index_type="IVF_PQ", metric="cosine", num_partitions=141, num_sub_vectors=48)
        l_build = time.perf_counter() - start
        knn["index"] = (
            queries_per_s(vlake_knn(vi, ef=64), queries),
            queries_per_s(lance_knn(lt, nprobes=20, refine_factor=10), queries),
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"dev dataset: {data.num_rows} rows, {data.nbytes / 1e6:.0f} MB in Arrow")
    print(f"{'operation':<28}{'vlake s':>10}{'lance s':>10}{'vlake speed-up':>16}")
    for name, (v, l) in rows.items():
        print(f"{name:<28}{v:>10.3f}{l:>10.3f}{l / v:>15.2f}x")
    print(f"\nKNN, k = 10, cosine, {len(queries)} queries one at a time")
    print(f"{'search':<28}{'vlake q/s':>10}{'recall':>8}{'lance q/s':>11}{'recall':>8}{'ratio':>8}")
    for name, ((vq, vr), (lq, lr)) in knn.items():
        label = {"exact": "no index (exact)", "index": "index (HNSW vs IVF_PQ)"}[name]
        print(f"{label:<28}{vq:>10.0f}{vr:>8.3f}{lq:>11.0f}{lr:>8.3f}{vq / lq:>7.1f}x")
    print(f"index build: vlake HNSW {v_build:.2f} s, lance IVF_PQ {l_build:.2f} s")


if __name__ == "__main__":
    main()
