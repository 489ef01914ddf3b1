#!/usr/bin/env python3
"""Append throughput: vlake vs pyarrow's Parquet writer vs pylance, in one run on one machine.

Each engine writes the same rows as `--commits` commits (a create, then appends) of
`--repeat` copies of the dev dataset. Reports rows/s, MB/s (Arrow in-memory bytes) and the
ratio of vlake's throughput to each peer's.

    python3 benchmarks/append.py            # builds vlake-bench in release mode first
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


def timed_commits(commits, write):
    seconds = []
    for i in range(commits):
        start = time.perf_counter()
        write(i)
        seconds.append(time.perf_counter() - start)
    return seconds


def result(engine, rows, nbytes, seconds):
    total = sum(seconds)
    return {
        "engine": engine,
        "rows": rows,
        "bytes": nbytes,
        "seconds": total,
        "rows_per_s": rows / total,
        "mb_per_s": nbytes / total / 1e6,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "dev", "base.parquet"))
    parser.add_argument("--repeat", type=int, default=5, help="copies of the dataset per commit")
    parser.add_argument("--commits", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(ROOT, "bench-out"))
    parser.add_argument("--no-build", action="store_true", help="use an existing target/release/vlake-bench")
    args = parser.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    bench = os.path.join(target, "release", "vlake-bench")
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "-p", "vlake-bench"], cwd=ROOT, check=True)

    base = pq.read_table(args.data)
    table = pa.concat_tables([base] * args.repeat).combine_chunks()
    rows, nbytes = table.num_rows * args.commits, table.nbytes * args.commits
    print(f"data: {args.data}: {table.num_rows} rows x {args.commits} commits, "
          f"{table.nbytes / 1e6:.1f} MB per commit in Arrow", file=sys.stderr)

    work = tempfile.mkdtemp(prefix="vlake-bench-")
    results = []
    try:
        # vlake, through its Rust API (the same code path as `vlake import`).
        out = subprocess.run(
            [bench, "append", "--data", args.data, "--repeat", str(args.repeat), "--commits", str(args.commits),
             "--out", os.path.join(work, "vlake")],
            check=True, capture_output=True, text=True)
        v = json.loads(out.stdout)
        results.append(result("vlake", v["rows"], nbytes, v["per_commit_seconds"]))

        # pyarrow: one Parquet file per commit, default settings.
        os.makedirs(os.path.join(work, "pq"))
        results.append(result("pyarrow parquet", rows, nbytes, timed_commits(
            args.commits, lambda i: pq.write_table(table, os.path.join(work, "pq", f"{i}.parquet")))))

        # pylance: lance.write_dataset create, then appends.
        try:
            import lance

            uri = os.path.join(work, "lance")
            results.append(result("pylance", rows, nbytes, timed_commits(
                args.commits, lambda i: lance.write_dataset(table, uri, mode="create" if i == 0 else "append"))))
        except ImportError:
            print("pylance not installed: skipped", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    vlake = results[0]
    print(f"\n{'engine':<18}{'rows':>10}{'seconds':>10}{'rows/s':>14}{'MB/s':>10}{'vlake/peer':>12}")
    for r in results:
        ratio = vlake["rows_per_s"] / r["rows_per_s"]
        r["vlake_ratio"] = ratio
        print(f"{r['engine']:<18}{r['rows']:>10}{r['seconds']:>10.3f}{r['rows_per_s']:>14,.0f}{r['mb_per_s']:>10.1f}{ratio:>12.2f}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "append.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
