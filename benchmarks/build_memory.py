#!/usr/bin/env python3
"""Peak memory of index builds at scale: 1M x 768 float32 (3 GiB of vectors) by default.

Writes a seeded Gaussian mixture to Parquet in chunks, imports it with `vlake import`, then
builds each index type in its own process and reports build time and peak resident memory
(VmHWM of the building process, which also holds the vectors it reads).

    python3 benchmarks/build_memory.py [--rows 1000000] [--dim 768] [--types ivf_pq,hnsw]
"""
import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--types", default="ivf_pq,hnsw")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench-out"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="vlake-mem-")
    results = {"rows": args.rows, "dim": args.dim, "builds": []}
    try:
        rng = np.random.default_rng(7)
        centers = rng.normal(0, 4, (1000, args.dim)).astype(np.float32)
        src = os.path.join(work, "data.parquet")
        schema = pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), args.dim))])
        with pq.ParquetWriter(src, schema, compression="none") as w:
            for start in range(0, args.rows, 100_000):
                n = min(100_000, args.rows - start)
                x = (centers[rng.integers(0, 1000, n)] + rng.normal(0, 1, (n, args.dim))).astype(np.float32)
                w.write_table(pa.table({"id": pa.array(np.arange(start, start + n)),
                                        "vector": pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), args.dim)},
                                       schema=schema))
        table = os.path.join(work, "t")
        t = time.perf_counter()
        subprocess.run([os.path.join(TARGET, "release", "vlake"), "import", src, table], check=True)
        results["import_s"] = time.perf_counter() - t
        os.remove(src)
        for kind in args.types.split(","):
            out = subprocess.run([os.path.join(TARGET, "release", "vlake-bench"), "build", "--table", table, "--type", kind,
                                  "--metric", "l2", "--name", kind], check=True, capture_output=True, text=True)
            b = json.loads(out.stdout)
            results["builds"].append({"type": kind, "seconds": b["seconds"], "peak_rss_mb": b["peak_rss_mb"]})
            print(f"{kind}: {b['seconds']:.1f}s, peak RSS {b['peak_rss_mb'] / 1024:.2f} GiB", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "build_memory.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
