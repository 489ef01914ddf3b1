#!/usr/bin/env python3
"""The Python package against pylance (Lance), in one run on the dev dataset (or a synthetic one):
write, full scan to Arrow, filtered scan, and vector search one query at a time returning ids
and returning every column, with recall@10; each engine runs in its own process, so that its
peak memory (VmHWM) is its own. Prints rows/s, queries/s, recall@10, peak memory and ratios.

    pip install -r benchmarks/requirements.txt      # pylance, numpy
    pip install ./python                              # vlake (the release build is the one to quote)
    python3 benchmarks/python_api.py [--queries 200] [--synthetic 100000x384]

Searches compared: vlake HNSW (ef 32 and 64) against Lance IVF_HNSW_SQ (the nearest in kind)
and IVF_PQ with refinement, all cosine, k = 10; read the recall column to match settings.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(ROOT, "..", "shared", "data", "dev")


def best(f, runs=3):
    """The fastest of `runs` runs of `f`, in seconds."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def queries_per_s(run, queries):
    """Queries/s and recall@10 of `run` (a vector to the ids found), one query at a time."""
    run(queries[0]["vector"])
    hits = 0
    start = time.perf_counter()
    for q in queries:
        hits += len(set(run(q["vector"])) & set(q["gt"][:10]))
    seconds = time.perf_counter() - start
    return len(queries) / seconds, hits / (10 * len(queries))


def peak_mb():
    """This process's peak resident memory."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def load(args):
    if args.synthetic:
        import numpy as np

        rows, dim = (int(x) for x in args.synthetic.split("x"))
        rng = np.random.default_rng(42)
        centers = rng.standard_normal((64, dim), dtype=np.float32)
        def vectors(n):
            v = centers[rng.integers(0, 64, n)] + 0.3 * rng.standard_normal((n, dim), dtype=np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)
        base = vectors(rows)
        data = pa.table(
            {
                "id": pa.array(np.arange(rows, dtype=np.int64)),
                "pos": pa.array(np.where(np.arange(rows) % 4 == 0, "v", "n")),
                "gloss": pa.array([f"row {i}" for i in range(rows)]),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(base.reshape(-1)), dim),
            }
        )
        q = vectors(args.queries)
        gt = np.argsort(-(q @ base.T), axis=1)[:, :10]
        queries = [{"vector": q[i], "gt": gt[i].tolist()} for i in range(len(q))]
        return data, queries
    data = pq.read_table(os.path.join(DEV, "base.parquet"))
    queries = pq.read_table(os.path.join(DEV, "queries.parquet")).slice(0, args.queries).to_pylist()
    import numpy as np

    for q in queries:
        q["vector"] = np.asarray(q["vector"], dtype=np.float32)
    return data, queries


def run_vlake(data, queries, work):
    import vlake

    out = {}
    n = iter(range(100))
    out["write"] = best(lambda: vlake.write_table(data, os.path.join(work, f"v{next(n)}")))
    t = vlake.write_table(data, os.path.join(work, "vt"))
    out["full scan"] = best(lambda: t.to_arrow())
    out["filtered scan"] = best(lambda: t.to_arrow(filter="pos = 'v'"))
    start = time.perf_counter()
    t.create_index("vector", type="hnsw", metric="cosine")
    out["index build"] = time.perf_counter() - start
    for ef in (32, 64):
        ids = lambda v, ef=ef: t.search(v).limit(10).ef(ef).select(["id"]).to_arrow().column("id").to_pylist()
        every = lambda v, ef=ef: t.search(v).limit(10).ef(ef).to_arrow().column("id").to_pylist()
        out[f"HNSW ef {ef}: ids"] = queries_per_s(ids, queries)
        out[f"HNSW ef {ef}: all columns"] = queries_per_s(every, queries)
    return out


def run_lance(data, queries, work):
    import lance

    out = {}
    n = iter(range(100))
    out["write"] = best(lambda: lance.write_dataset(data, os.path.join(work, f"l{next(n)}")))
    ds = lance.write_dataset(data, os.path.join(work, "lt"))
    out["full scan"] = best(lambda: ds.to_table())
    out["filtered scan"] = best(lambda: ds.to_table(filter="pos = 'v'"))
    dim = data.schema.field("vector").type.list_size
    partitions = max(1, int(data.num_rows**0.5 / 4))

    def search(columns, **kw):
        def run(v):
            found = ds.to_table(columns=columns, nearest={"column": "vector", "q": v, "k": 10, "metric": "cosine", **kw})
            return found.column("id").to_pylist()

        return run

    start = time.perf_counter()
    ds.create_index("vector", index_type="IVF_HNSW_SQ", metric="cosine", num_partitions=partitions)
    out["index build"] = time.perf_counter() - start
    for ef in (32, 64):
        kw = {"nprobes": partitions, "ef": ef}
        out[f"IVF_HNSW_SQ ef {ef}: ids"] = queries_per_s(search(["id"], **kw), queries)
        out[f"IVF_HNSW_SQ ef {ef}: all columns"] = queries_per_s(search(None, **kw), queries)
    ds.create_index(
        "vector", index_type="IVF_PQ", metric="cosine", num_partitions=partitions, num_sub_vectors=dim // 8, replace=True
    )
    kw = {"nprobes": min(20, partitions), "refine_factor": 10}
    out["IVF_PQ refine 10: ids"] = queries_per_s(search(["id"], **kw), queries)
    out["IVF_PQ refine 10: all columns"] = queries_per_s(search(None, **kw), queries)
    return out


def child(engine, args):
    data, queries = load(args)
    work = tempfile.mkdtemp(prefix=f"bench-{engine}-")
    try:
        out = {"vlake": run_vlake, "lance": run_lance}[engine](data, queries, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["peak memory MB"] = peak_mb()
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--synthetic", help="ROWSxDIM of seeded clustered vectors instead of the dev dataset")
    parser.add_argument("--engine", choices=["vlake", "lance"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:
        return child(args.engine, args)
    passed = [a for a in sys.argv[1:]]
    results = {}
    for engine in ("vlake", "lance"):
        done = subprocess.run([sys.executable, __file__, "--engine", engine, *passed], capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"{engine} failed:\n{done.stderr}")
        results[engine] = json.loads(done.stdout.strip().splitlines()[-1])
    data, queries = load(args)
    v, l = results["vlake"], results["lance"]
    rows = data.num_rows
    print(f"{rows} rows x {data.schema.field('vector').type.list_size}, {data.nbytes / 1e6:.0f} MB in Arrow; "
          f"{len(queries)} queries one at a time, k = 10, cosine")
    print(f"\n{'rows/s':<22}{'vlake':>12}{'lance':>12}{'vlake/lance':>13}")
    for name in ("write", "full scan", "filtered scan"):
        print(f"{name:<22}{rows / v[name]:>12,.0f}{rows / l[name]:>12,.0f}{l[name] / v[name]:>12.2f}x")
    print(f"\n{'search':<36}{'q/s':>9}{'recall@10':>11}")
    for engine, out in (("vlake", v), ("lance", l)):
        for name, value in out.items():
            if isinstance(value, list):
                print(f"{engine + ' ' + name:<36}{value[0]:>9,.0f}{value[1]:>11.3f}")
    for what in ("ids", "all columns"):
        vq, vr = v[f"HNSW ef 64: {what}"]
        lq, lr = l[f"IVF_HNSW_SQ ef 64: {what}"]
        print(f"ratio at ef 64, {what}: vlake/lance {vq / lq:.2f}x (recall {vr:.3f} vs {lr:.3f})")
    print(f"\nindex build s: vlake HNSW {v['index build']:.2f}, lance IVF_HNSW_SQ {l['index build']:.2f}")
    print(f"peak memory MB: vlake {v['peak memory MB']:.0f}, lance {l['peak memory MB']:.0f}")


if __name__ == "__main__":
    main()
