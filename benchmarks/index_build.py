#!/usr/bin/env python3
"""Index build time: vlake-index vs FAISS on the same data, in one run, interleaved.

Builds IVF-PQ (FAISS: IndexIVFPQ + IndexRefineFlat, trained on 256 x nlist sampled rows, as in
benchmarks/vector.py), IVF-Flat and HNSW (M 16, efConstruction 100) on (a) the dev set (20k x 384
MiniLM, cosine: 141 partitions, 48 sub-vectors) and (b) the seeded Gaussian mixture of
benchmarks/vector.py (default 1M x 128, L2: 1000 partitions, 16 sub-vectors). vlake runs as the
`raw-build` subcommand of `vlake-bench` (prepare, train, partition, serialise the segment,
as a table's index build does), without the table layer's Parquet reading. Each pair of builds
runs back to back (FAISS, then vlake, `--repeat` times), so the ratios compare builds under the
same machine load. Prints build seconds (wall and CPU, all threads), recall@10 per nprobes / ef
and the ratios. On a shared machine FAISS's OpenMP threads spin while waiting and lose much time
to other processes; `--omp-wait-policy passive` gives FAISS its best numbers there.

    export CARGO_TARGET_DIR=$HOME/.cache/ivf-target     # any target dir
    python3 benchmarks/index_build.py                    # both sets, all three kinds
    python3 benchmarks/index_build.py --synthetic-rows 0 --kinds ivf_pq   # dev set, IVF-PQ only
    python3 benchmarks/index_build.py --skip-dev --kinds hnsw --repeat 1

Needs `pip install faiss-cpu numpy pyarrow`; builds `vlake-bench` with cargo unless --no-build.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vector import ROOT, THREADS, TARGET, gaussian_mixture, recall  # noqa: E402

HARNESS = [os.path.join(TARGET, "release", "vlake-bench"), "raw-build"]
K = 10


def dev_set(data):
    base = pq.read_table(os.path.join(data, "base.parquet"), columns=["id", "vector"])
    queries = pq.read_table(os.path.join(data, "queries.parquet"), columns=["vector", "gt"])
    x = np.stack(base.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    row_of = {int(i): r for r, i in enumerate(base.column("id").to_numpy())}
    q = np.stack([np.asarray(v, dtype=np.float32) for v in queries.column("vector").to_pylist()])
    gt = [[row_of[i] for i in g[:K]] for g in queries.column("gt").to_pylist()]
    return {"name": "dev", "metric": "cosine", "x": x, "q": q, "gt": gt, "nlist": 141, "m": 48,
            "nprobes": [10, 20, 40], "ef": [32, 64, 128]}


def synthetic(rows):
    import faiss
    x, q = gaussian_mixture(rows)
    q = np.stack(q)
    flat = faiss.IndexFlatL2(x.shape[1])
    flat.add(x)
    gt = flat.search(q, K)[1].tolist()
    return {"name": f"synthetic {rows}", "metric": "l2", "x": x, "q": q, "gt": gt, "nlist": 1000, "m": 16,
            "nprobes": [10, 20, 40], "ef": [32, 64, 128]}


def faiss_build(ds, kind):
    """Builds with FAISS on all threads; returns (seconds, CPU seconds, search(q, setting) -> ids)."""
    import faiss
    x = ds["x"]
    ip = ds["metric"] == "cosine"
    if ip:
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
    d = x.shape[1]
    fm = faiss.METRIC_INNER_PRODUCT if ip else faiss.METRIC_L2
    faiss.omp_set_num_threads(THREADS)
    t, cpu = time.perf_counter(), time.process_time()
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, 16, fm)
        index.hnsw.efConstruction = 100
        index.add(x)

        def setter(s):
            index.hnsw.efSearch = s
    else:
        quantizer = faiss.IndexFlat(d, fm)
        nlist = ds["nlist"]
        if kind == "ivf_pq":
            ivf = faiss.IndexIVFPQ(quantizer, d, nlist, ds["m"], 8, fm)
        else:
            ivf = faiss.IndexIVFFlat(quantizer, d, nlist, fm)
        ivf.train(x[np.random.default_rng(0).choice(len(x), min(len(x), 256 * nlist), replace=False)])
        index = faiss.IndexRefineFlat(ivf) if kind == "ivf_pq" else ivf
        if kind == "ivf_pq":
            index.k_factor = 10
        index.add(x)

        def setter(s):
            ivf.nprobe = s
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu

    def search(q, setting):
        setter(setting)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True) if ip else q
        faiss.omp_set_num_threads(1)
        return index.search(qn, K)[1].tolist()

    return seconds, cpu, search


def vlake_build(ds, kind):
    """Runs the harness; returns its JSON (build_s, phases, sweep with recall)."""
    settings = ds["ef"] if kind == "hnsw" else ds["nprobes"]
    args = [*HARNESS, ds["base_path"], str(ds["x"].shape[1]), ds["metric"], kind,
            f"queries={ds['q_path']}", f"gt={ds['gt_path']}", "settings=" + ",".join(map(str, settings))]
    if kind != "hnsw":
        args.append(f"partitions={ds['nlist']}")
    if kind == "ivf_pq":
        args.append(f"subvectors={ds['m']}")
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def run(ds, kinds, repeat, work):
    name = ds["name"].replace(" ", "_")
    ds["base_path"] = os.path.join(work, f"{name}.f32")
    ds["q_path"] = os.path.join(work, f"{name}_q.f32")
    ds["gt_path"] = os.path.join(work, f"{name}_gt.u64")
    ds["x"].astype("<f4").tofile(ds["base_path"])
    ds["q"].astype("<f4").tofile(ds["q_path"])
    np.asarray(ds["gt"], dtype="<u8").tofile(ds["gt_path"])
    rows = []
    for kind in kinds:
        settings = ds["ef"] if kind == "hnsw" else ds["nprobes"]
        for _ in range(repeat):
            fs, fcpu, search = faiss_build(ds, kind)
            frec = [recall(search(ds["q"], s), ds["gt"]) for s in settings]
            del search
            v = vlake_build(ds, kind)
            vrec = [e["recall"] for e in v["sweep"]]
            rows.append({"dataset": ds["name"], "kind": kind, "faiss_s": fs, "vlake_s": v["build_s"],
                         "faiss_cpu_s": fcpu, "vlake_cpu_s": v["build_cpu_s"],
                         "phases": v["phases"], "settings": settings, "faiss_recall": frec, "vlake_recall": vrec})
            print(f"{ds['name']:>16} {kind:8} faiss {fs:7.2f}s  vlake {v['build_s']:7.2f}s  "
                  f"ratio {v['build_s'] / fs:5.2f}x  (CPU {fcpu:.2f}s vs {v['build_cpu_s']:.2f}s: "
                  f"{v['build_cpu_s'] / fcpu:.2f}x)  phases {v['phases']}", flush=True)
            print(f"{'':>16} {'':8} recall@10 at {settings}: faiss "
                  + " ".join(f"{r:.3f}" for r in frec) + "  vlake " + " ".join(f"{r:.3f}" for r in vrec), flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "dev"))
    parser.add_argument("--synthetic-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-dev", action="store_true")
    parser.add_argument("--kinds", default="ivf_pq,ivf_flat,hnsw")
    parser.add_argument("--repeat", type=int, default=1, help="FAISS/vlake build pairs per kind")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--omp-wait-policy", choices=["active", "passive"],
                        help="FAISS's OpenMP waiting; on a loaded machine its default spinning slows it down")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench-out"))
    args = parser.parse_args()
    if args.omp_wait_policy:
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()  # read when faiss loads
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "vlake-bench"],
                       cwd=ROOT, check=True)
    kinds = args.kinds.split(",")
    rows = []
    with tempfile.TemporaryDirectory(prefix="vlake-ibench-") as work:
        if not args.skip_dev:
            rows += run(dev_set(args.data), kinds, args.repeat, work)
        if args.synthetic_rows:
            rows += run(synthetic(args.synthetic_rows), kinds, args.repeat, work)
    print(f"\nbuild time, vlake / FAISS (same run; OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'default')}):")
    for r in rows:
        print(f"  {r['dataset']:>16} {r['kind']:8} wall {r['vlake_s']:7.2f}s / {r['faiss_s']:7.2f}s = {r['vlake_s'] / r['faiss_s']:.2f}x"
              f"   CPU {r['vlake_cpu_s']:7.2f}s / {r['faiss_cpu_s']:7.2f}s = {r['vlake_cpu_s'] / r['faiss_cpu_s']:.2f}x")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "index_build.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
