#!/usr/bin/env python3
"""The DuckDB extension against DuckDB's own paths, in one run and one DuckDB connection:

- full scan (`sum` over every column) and a filtered `GROUP BY` through `vlake_scan`, against
  `read_parquet` over the same rows (the dev set written as one Parquet file);
- KNN through `vlake_search` (HNSW, cosine, k 10, one query at a time) against DuckDB's brute
  force `ORDER BY array_cosine_distance(...) LIMIT 10` over a native table, with recall@10
  against the shipped ground truth;
- batch KNN of 1,000 queries (the dev queries, cycled) in one statement: `vlake_search_batch`
  against DuckDB's brute force `min_by(id, array_cosine_distance(...), 10)` over the cross
  product with a query table.

    scripts/build_duckdb_extension.sh --profile release     # the build to quote
    python3 benchmarks/duckdb_ext.py [--extension PATH] [--queries 200] [--repeat 5]

Prints the seconds or queries/s of each side and the ratios.
"""
import argparse
import os
import subprocess
import tempfile
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

import vlake

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


def knn(con, sql, queries):
    """Queries/s and recall@10 of `sql` (one `?`: the query vector; returns ids first)."""
    con.execute(sql, [queries[0]["vector"]]).fetchall()
    hits = 0
    start = time.perf_counter()
    for q in queries:
        found = [r[0] for r in con.execute(sql, [q["vector"]]).fetchall()]
        hits += len(set(found) & set(q["gt"][:10]))
    return len(queries) / (time.perf_counter() - start), hits / (10 * len(queries))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extension", help="vlake.duckdb_extension (default: build the dev profile)")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=1000, help="queries of the batch KNN")
    parser.add_argument("--repeat", type=int, default=5, help="copies of the dev rows in the scanned table")
    args = parser.parse_args()
    extension = args.extension or subprocess.run(
        [os.path.join(ROOT, "scripts", "build_duckdb_extension.sh")], check=True, capture_output=True, text=True
    ).stdout.split()[-1]

    base = pq.read_table(os.path.join(DEV, "base.parquet"))
    queries = pq.read_table(os.path.join(DEV, "queries.parquet")).slice(0, args.queries).to_pylist()
    work = tempfile.mkdtemp(prefix="vlake-duckdb-bench-")
    scanned = pa.concat_tables([base] * args.repeat)
    parquet = os.path.join(work, "rows.parquet")
    pq.write_table(scanned, parquet)
    vlake.write_table(scanned, os.path.join(work, "scan"))
    search = vlake.write_table(base, os.path.join(work, "search"))
    search.create_index("vector", type="hnsw", metric="cosine")

    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    con.execute(f"LOAD '{os.path.abspath(extension)}'")
    con.execute("CREATE TABLE native AS SELECT id, vector::FLOAT[384] AS vector FROM read_parquet(?)",
                [os.path.join(DEV, "base.parquet")])
    sources = {"vlake_scan": f"vlake_scan('{work}/scan')", "read_parquet": f"read_parquet('{parquet}')"}
    full = "SELECT count(*), sum(id), sum(length(gloss)), sum(list_sum(vector::FLOAT[])) FROM {}"
    grouped = "SELECT pos, count(*), avg(length(gloss)) FROM {} WHERE id % 3 = 0 GROUP BY pos ORDER BY pos"
    print(f"{scanned.num_rows:,} rows x {len(scanned.schema)} columns scanned; {len(queries)} queries, k = 10")
    print(f"\n{'seconds (best of 3)':<28}{'vlake_scan':>12}{'read_parquet':>14}{'speed ratio':>13}")
    for name, sql in [("full scan", full), ("filtered GROUP BY", grouped)]:
        results = {k: con.execute(sql.format(v)).fetchall() for k, v in sources.items()}
        assert results["vlake_scan"] == results["read_parquet"] or name == "full scan", results
        t = {k: best(lambda v=v: con.execute(sql.format(v)).fetchall()) for k, v in sources.items()}
        print(f"{name:<28}{t['vlake_scan']:>12.3f}{t['read_parquet']:>14.3f}{t['read_parquet'] / t['vlake_scan']:>12.2f}x")

    vlake_qps, vlake_recall = knn(
        con, f"SELECT id FROM vlake_search('{work}/search', 'vector', ?, 10)", queries
    )
    brute_qps, brute_recall = knn(
        con, "SELECT id FROM native ORDER BY array_cosine_distance(vector, ?::FLOAT[384]) LIMIT 10", queries
    )
    print(f"\n{'KNN':<28}{'q/s':>12}{'recall@10':>14}")
    print(f"{'vlake_search (HNSW)':<28}{vlake_qps:>12.0f}{vlake_recall:>14.3f}")
    print(f"{'DuckDB brute force':<28}{brute_qps:>12.0f}{brute_recall:>14.3f}")
    print(f"vlake_search / brute force: {vlake_qps / brute_qps:.1f}x")

    every = pq.read_table(os.path.join(DEV, "queries.parquet")).to_pylist()
    batch = [every[i % len(every)] for i in range(args.batch)]
    vectors = [q["vector"] for q in batch]
    con.execute("CREATE TABLE q AS SELECT unnest(range(1, ?::BIGINT + 1)) AS qid, unnest(?::FLOAT[384][]) AS vec",
                [len(batch), vectors])

    def recall(rows):
        found = {}
        for qid, id_ in rows:
            found.setdefault(qid, set()).add(id_)
        return sum(len(found.get(i + 1, set()) & set(q["gt"][:10])) for i, q in enumerate(batch)) / (10 * len(batch))

    con.execute("SET VARIABLE queries = (SELECT list(vec::DOUBLE[] ORDER BY qid) FROM q)")
    ours = f"SELECT _query, id FROM vlake_search_batch('{work}/search', 'vector', getvariable('queries'), 10)"
    theirs = ("SELECT qid, unnest(min_by(id, array_cosine_distance(vector, vec), 10)) FROM q, native GROUP BY qid")
    print(f"\n{'batch KNN, ' + str(len(batch)) + ' queries':<28}{'seconds':>12}{'recall@10':>14}")
    times = {}
    for name, sql in [("vlake_search_batch", ours), ("DuckDB brute force", theirs)]:
        rows = con.execute(sql).fetchall()
        times[name] = best(lambda sql=sql: con.execute(sql).fetchall(), runs=2)
        print(f"{name:<28}{times[name]:>12.3f}{recall(rows):>14.3f}")
    ratio = times["DuckDB brute force"] / times["vlake_search_batch"]
    print(f"vlake_search_batch / brute force: {ratio:.1f}x ({len(batch) / times['vlake_search_batch']:.0f} q/s)")


if __name__ == "__main__":
    main()
