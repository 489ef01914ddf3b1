#!/usr/bin/env python3
"""Vector search: vlake vs FAISS, pylance, DuckDB and numpy, in one run on one machine.

Datasets: (a) the dev set (20k x 384 MiniLM, cosine, exact ground truth shipped) and
(b) a seeded Gaussian mixture (default 1M x 128, L2; ground truth computed here with FAISS's
exact index). For each engine and index: build time, peak memory, recall@10 and queries/s with
one query at a time from one thread and from all threads, swept over ef / nprobes; then the
best queries/s at recall@10 >= 0.95 and the ratios to the peers.

    python3 benchmarks/vector.py                 # both datasets
    python3 benchmarks/vector.py --synthetic-rows 0   # dev set only
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("LANCE_LOG", "error")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BENCH = os.path.join(TARGET, "release", "vlake-bench")
VLAKE = os.path.join(TARGET, "release", "vlake")
THREADS = os.cpu_count() or 1


class PeakRss:
    """Peak resident memory growth of this process while the block runs (MiB)."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _rss(self):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.running = False
        self.thread.join()
        self.mb = self.peak - self.base


def recall(found, gt):
    return float(np.mean([len(set(map(int, f[:10])) & set(map(int, g[:10]))) / 10 for f, g in zip(found, gt)]))


def timed_queries(queries, run, threads=1):
    """(results, queries/s) running `run(q)` for every query, from `threads` threads."""
    out = [None] * len(queries)
    start = time.perf_counter()
    if threads == 1:
        for i, q in enumerate(queries):
            out[i] = run(q)
    else:
        def work(t):
            for i in range(t, len(queries), threads):
                out[i] = run(queries[i])
        ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    return out, len(queries) / (time.perf_counter() - start)


def row(results, engine, index, build_s=None, mem=None, sweep=()):
    results.append({"engine": engine, "index": index, "build_s": build_s, "peak_mb": mem, "sweep": list(sweep)})
    best = max((s["recall"] or 0 for s in sweep), default=0)
    print(f"[{time.strftime('%H:%M:%S')}] {engine} {index}: build {build_s}, best recall {best:.3f}", file=sys.stderr, flush=True)


def vlake(results, table, queries_path, metric, n_queries, specs, filter_sql=None, label=""):
    for name, kind, extra, settings in specs:
        build_s = mem = None
        if kind != "exact":
            out = subprocess.run([BENCH, "build", "--table", table, "--type", kind, "--metric", metric, "--name", name] + extra,
                                 check=True, capture_output=True, text=True)
            b = json.loads(out.stdout)
            build_s, mem = b["seconds"], b["peak_rss_mb"]
        args = [BENCH, "query", "--table", table, "--queries", queries_path, "--index", name if kind != "exact" else "exact",
                "--metric", metric, "--sweep", ",".join(map(str, settings)), "--max-queries", str(n_queries)]
        if filter_sql:
            args += ["--filter", filter_sql]
        env = dict(os.environ, RAYON_NUM_THREADS="1")
        one = json.loads(subprocess.run(args + ["--threads", "0"], check=True, capture_output=True, text=True, env=env).stdout)
        many = json.loads(subprocess.run(args + ["--threads", str(THREADS)], check=True, capture_output=True, text=True).stdout)
        sweep = [{"setting": a["setting"], "recall": a["recall"], "qps_1": a["qps_1"], "qps_all": b["qps_all"]}
                 for a, b in zip(one["results"], many["results"])]
        row(results, "vlake", kind + label, build_s, mem, sweep)


def faiss_runs(results, x, q, gt, metric, nlist, m):
    import faiss
    d = x.shape[1]
    ip = metric == "cosine"
    faiss_metric = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2

    def sweep_of(index, setter, settings):
        out = []
        for s in settings:
            setter(s)
            faiss.omp_set_num_threads(1)
            found, qps1 = timed_queries(q, lambda v: index.search(v[None, :], 10)[1][0])
            faiss.omp_set_num_threads(THREADS)
            _, qpsn = timed_queries(q, lambda v: index.search(v[None, :], 10)[1][0], THREADS)
            out.append({"setting": s, "recall": recall(found, gt), "qps_1": qps1, "qps_all": qpsn})
        return out

    faiss.omp_set_num_threads(THREADS)
    with PeakRss() as mem:
        t = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(d, 16, faiss_metric)
        hnsw.hnsw.efConstruction = 100
        hnsw.add(x)
        build = time.perf_counter() - t
    row(results, "faiss", "hnsw", build, mem.mb,
        sweep_of(hnsw, lambda s: setattr(hnsw.hnsw, "efSearch", s), [16, 32, 64, 80, 96, 128, 256]))
    del hnsw
    with PeakRss() as mem:
        t = time.perf_counter()
        quantizer = faiss.IndexFlat(d, faiss_metric)
        ivfpq = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss_metric)
        ivfpq.train(x[np.random.default_rng(0).choice(len(x), min(len(x), 256 * nlist), replace=False)])
        refined = faiss.IndexRefineFlat(ivfpq)
        refined.k_factor = 10
        refined.add(x)
        build = time.perf_counter() - t
    row(results, "faiss", "ivf_pq", build, mem.mb,
        sweep_of(refined, lambda s: setattr(ivfpq, "nprobe", s), [5, 10, 20, 40, 80]))


def lance_runs(results, tbl, q, gt, metric, nlist, m, work, filter_sql=None, fgt=None):
    import lance
    uri = os.path.join(work, f"lance_{tbl.num_rows}")
    ds = lance.write_dataset(tbl, uri)

    def query(v, filtered=False, **kw):
        extra = {"filter": filter_sql, "prefilter": True} if filtered else {}
        return ds.to_table(columns=["id"], nearest={"column": "vector", "q": v, "k": 10, "metric": metric, **kw},
                           **extra).column("id").to_pylist()

    found, qps1 = timed_queries(q[:20], lambda v: query(v, use_index=False))
    row(results, "pylance", "exact", None, None, [{"setting": 0, "recall": recall(found, gt[:20]), "qps_1": qps1, "qps_all": None}])
    with PeakRss() as mem:
        t = time.perf_counter()
        ds.create_index("vector", index_type="IVF_PQ", num_partitions=nlist, num_sub_vectors=m, metric=metric)
        build = time.perf_counter() - t
    ds = lance.dataset(uri)
    sweep = []
    for s in [5, 10, 20, 40, 80]:
        found, qps1 = timed_queries(q, lambda v: query(v, nprobes=s, refine_factor=10))
        _, qpsn = timed_queries(q, lambda v: query(v, nprobes=s, refine_factor=10), THREADS)
        sweep.append({"setting": s, "recall": recall(found, gt), "qps_1": qps1, "qps_all": qpsn})
    row(results, "pylance", "ivf_pq", build, mem.mb, sweep)
    if filter_sql:
        found, qps1 = timed_queries(q, lambda v: query(v, filtered=True, nprobes=20, refine_factor=10))
        row(results, "pylance", "ivf_pq+filter", None, None, [{"setting": 20, "recall": recall(found, fgt), "qps_1": qps1, "qps_all": None}])


def duckdb_runs(results, tbl, q, gt, metric, n):
    import duckdb
    con = duckdb.connect()
    con.register("src", tbl)
    con.execute("CREATE TABLE t AS SELECT * FROM src")
    d = len(q[0])
    fn = "array_cosine_distance" if metric == "cosine" else "array_distance"
    sql = f"SELECT id FROM t ORDER BY {fn}(vector::FLOAT[{d}], ?::FLOAT[{d}]) LIMIT 10"
    out = []
    for threads in (1, THREADS):
        con.execute(f"SET threads={threads}")
        found, qps = timed_queries(q[:n], lambda v: [r[0] for r in con.execute(sql, [v.tolist()]).fetchall()])
        out.append((found, qps))
    row(results, "duckdb", "exact", None, None, [{"setting": 0, "recall": recall(out[0][0], gt[:n]), "qps_1": out[0][1], "qps_all": out[1][1]}])


def numpy_runs(results, x, q, gt, metric):
    """Exact search with numpy (one BLAS thread) and the machine's memory read bandwidth."""
    code = r"""
import json, sys, time, numpy as np
x = np.load(sys.argv[1]); q = np.load(sys.argv[2])
t = time.perf_counter(); found = []
for v in q:
    s = x @ v if sys.argv[3] == "cosine" else -((x - v) ** 2).sum(1) if False else -(np.einsum('ij,ij->i', x, x) - 2 * (x @ v))
    found.append(np.argpartition(-s, 10)[:10][np.argsort(-s[np.argpartition(-s, 10)[:10]])].tolist())
qps = len(q) / (time.perf_counter() - t)
big = np.ones((1 << 28,), dtype=np.float32)  # 1 GiB, far beyond any cache
big.sum(); t = time.perf_counter(); reps = 3
for _ in range(reps): big.sum()
bw = reps * big.nbytes / (time.perf_counter() - t) / 1e9
print(json.dumps({"found": found, "qps": qps, "bandwidth_gbs": bw}))
"""
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "x.npy"), x)
        np.save(os.path.join(d, "q.npy"), np.stack(q[:50]))
        env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        out = json.loads(subprocess.run([sys.executable, "-c", code, os.path.join(d, "x.npy"), os.path.join(d, "q.npy"), metric],
                                        check=True, capture_output=True, text=True, env=env).stdout)
    row(results, "numpy", "exact", None, None, [{"setting": 0, "recall": None, "qps_1": out["qps"], "qps_all": None}])
    return out["bandwidth_gbs"]


def best_at(entry, target=0.95, key="qps_1"):
    ok = [s[key] for s in entry["sweep"] if s["recall"] is not None and s["recall"] >= target and s[key]]
    return max(ok) if ok else None


def report(title, results, bandwidth, bytes_per_query):
    print(f"\n## {title}")
    print(f"memory read bandwidth (numpy sum of 1 GiB, 1 thread): {bandwidth:.1f} GB/s")
    print(f"\n{'engine':<9}{'index':<16}{'build s':>9}{'peak MiB':>10}  sweep: setting recall q/s(1 thread) q/s(all)")
    for r in results:
        sweep = "; ".join(f"{s['setting']}: {s['recall'] if s['recall'] is None else round(s['recall'], 3)} "
                          f"{s['qps_1']:.0f} {s['qps_all'] or 0:.0f}" for s in r["sweep"])
        b = f"{r['build_s']:.2f}" if r["build_s"] is not None else "-"
        m = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "-"
        print(f"{r['engine']:<9}{r['index']:<16}{b:>9}{m:>10}  {sweep}")
    find = lambda e, i: next((r for r in results if r["engine"] == e and r["index"] == i), None)
    print("\nbest q/s (1 thread) at recall@10 >= 0.95, and ratios:")
    for e, i in [("vlake", "hnsw"), ("vlake", "ivf_pq"), ("vlake", "ivf_flat"), ("faiss", "hnsw"), ("faiss", "ivf_pq"), ("pylance", "ivf_pq")]:
        r = find(e, i)
        if r:
            print(f"  {e} {i}: {best_at(r) or 'never reached 0.95'}")
    vh, fh, lp = find("vlake", "hnsw"), find("faiss", "hnsw"), find("pylance", "ivf_pq")
    if vh and fh and best_at(vh) and best_at(fh):
        print(f"  vlake hnsw / faiss hnsw: {best_at(vh) / best_at(fh):.2f}x q/s; build {vh['build_s'] / fh['build_s']:.2f}x time")
    if vh and lp and best_at(vh) and best_at(lp):
        print(f"  vlake hnsw / pylance ivf_pq: {best_at(vh) / best_at(lp):.1f}x")
    vp, fp = find("vlake", "ivf_pq"), find("faiss", "ivf_pq")
    if vp and fp:
        print(f"  ivf_pq build: vlake {vp['build_s']:.2f}s vs faiss {fp['build_s']:.2f}s ({vp['build_s'] / fp['build_s']:.2f}x)")
    ve, de = find("vlake", "exact"), find("duckdb", "exact")
    if ve and de:
        q1 = ve["sweep"][0]["qps_1"]
        print(f"  exact: vlake {q1:.1f} q/s = {q1 / de['sweep'][0]['qps_1']:.1f}x duckdb; "
              f"{q1 * bytes_per_query / 1e9:.1f} GB/s = {100 * q1 * bytes_per_query / 1e9 / bandwidth:.0f}% of bandwidth (1 thread)")
    vf, lf = find("vlake", "hnsw+filter"), find("pylance", "ivf_pq+filter")
    if vf:
        print(f"  filtered (prefilter): vlake hnsw recall {vf['sweep'][0]['recall']:.3f} at {vf['sweep'][0]['qps_1']:.0f} q/s"
              + (f"; pylance recall {lf['sweep'][0]['recall']:.3f} at {lf['sweep'][0]['qps_1']:.0f} q/s" if lf else ""))


def dev_set(work, args):
    base = pq.read_table(os.path.join(args.data, "base.parquet"))
    queries = pq.read_table(os.path.join(args.data, "queries.parquet"))
    x = np.stack(base.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    ids = base.column("id").to_numpy()
    q = [np.asarray(v, dtype=np.float32) for v in queries.column("vector").to_pylist()]
    gt = [g[:10] for g in queries.column("gt").to_pylist()]
    # Filtered ground truth: pos = 'v' (about 12% of rows).
    mask = np.array([p == "v" for p in base.column("pos").to_pylist()])
    fgt = [ids[mask][np.argsort(-(x[mask] @ v))[:10]].tolist() for v in q]
    qpath = os.path.join(work, "dev_q.parquet")
    pq.write_table(queries.select(["vector", "gt"]), qpath)
    fpath = os.path.join(work, "dev_fq.parquet")
    pq.write_table(pa.table({"vector": queries.column("vector"), "gt": pa.array(fgt, pa.list_(pa.int64()))}), fpath)
    table = os.path.join(work, "dev_vlake")
    subprocess.run([VLAKE, "import", os.path.join(args.data, "base.parquet"), table], check=True, capture_output=True)
    results = []
    nlist, m = 141, 48
    vlake(results, table, qpath, "cosine", 200, [
        ("h", "hnsw", [], [16, 32, 64, 80, 96, 128, 256]),
        ("pq", "ivf_pq", ["--partitions", str(nlist), "--subvectors", str(m)], [5, 10, 20, 40, 80]),
        ("fl", "ivf_flat", ["--partitions", str(nlist)], [5, 10, 20, 40]),
        ("exact", "exact", [], [0]),
    ])
    vlake(results, table, fpath, "cosine", 200, [("h", "hnsw", [], [64])], filter_sql="pos = 'v'", label="+filter")
    # the filtered run rebuilt 'h'; harmless (same parameters)
    faiss_runs(results, x / np.linalg.norm(x, axis=1, keepdims=True), [v / np.linalg.norm(v) for v in q],
               [[int(np.where(ids == i)[0][0]) for i in g] for g in gt], "cosine", nlist, m)
    lance_runs(results, base, q, gt, "cosine", nlist, m, work, "pos = 'v'", fgt)
    duckdb_runs(results, base, q, gt, "cosine", 40)
    bw = numpy_runs(results, x, q, [[int(np.where(ids == i)[0][0]) for i in g] for g in gt], "cosine")
    report(f"dev set: {len(x)} x {x.shape[1]} MiniLM, cosine, {len(q)} queries", results, bw, x.shape[1] * 4 * len(x))
    return results


def gaussian_mixture(n, d=128, seed=42):
    """The seeded synthetic set: n rows around 1000 centres (x, float32) and 200 queries."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1, (1000, d)).astype(np.float32) * 4
    labels = rng.integers(0, 1000, n)
    x = (centers[labels] + rng.normal(0, 1, (n, d))).astype(np.float32)
    q = [(centers[c] + rng.normal(0, 1, d)).astype(np.float32) for c in rng.integers(0, 1000, 200)]
    return x, q


def synthetic(work, args):
    n, d = args.synthetic_rows, 128
    x, q = gaussian_mixture(n, d)
    import faiss
    flat = faiss.IndexFlatL2(d)
    flat.add(x)
    _, gt = flat.search(np.stack(q), 10)
    del flat
    gt = gt.tolist()
    tbl = pa.table({"id": pa.array(np.arange(n, dtype=np.int64)),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), d)})
    src = os.path.join(work, "syn.parquet")
    pq.write_table(tbl, src)
    qpath = os.path.join(work, "syn_q.parquet")
    pq.write_table(pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(np.stack(q).reshape(-1)), d),
                             "gt": pa.array(gt, pa.list_(pa.int64()))}), qpath)
    table = os.path.join(work, "syn_vlake")
    subprocess.run([VLAKE, "import", src, table], check=True, capture_output=True)
    results = []
    nlist, m = 1000, 16
    vlake(results, table, qpath, "l2", 200, [
        ("h", "hnsw", [], [16, 32, 64, 80, 96, 128]),
        ("pq", "ivf_pq", ["--partitions", str(nlist), "--subvectors", str(m)], [10, 20, 40, 80]),
        ("exact", "exact", [], [0]),
    ])
    faiss_runs(results, x, q, gt, "l2", nlist, m)
    lance_runs(results, tbl, q, gt, "l2", nlist, m, work)
    duckdb_runs(results, tbl, q, gt, "l2", 10)
    bw = numpy_runs(results, x, q, gt, "l2")
    report(f"synthetic: {n} x {d} Gaussian mixture, L2, {len(q)} queries", results, bw, d * 4 * n)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "dev"))
    parser.add_argument("--synthetic-rows", type=int, default=1_000_000)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench-out"))
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--skip-dev", action="store_true", help="only the synthetic set")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "vlake-cli", "-p", "vlake-bench"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="vlake-vbench-")
    out = {}
    try:
        if not args.skip_dev:
            out["dev"] = dev_set(work, args)
        if args.synthetic_rows:
            out["synthetic"] = synthetic(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "vector.json"), "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
