#!/usr/bin/env python3
"""SQL over vlake (DataFusion), in one run on one machine:

- the same KNN query (k = 10, cosine, HNSW index, dev dataset) through SQL and through the Rust
  API: `ORDER BY cosine_distance(vector, [..]) LIMIT 10` (rewritten to an index search) with the
  vector written out, `vector_search` with the vector as text, a prepared statement
  (`PREPARE knn AS ... cosine_distance(vector, $1) ...`, `EXECUTE knn('[..]')`) and the statement
  planned once in Rust with the vector bound by `with_param_values`; and the same for exact
  search (`vector_search(..., 'exact=true')`): queries/s, recall@10 and SQL's overhead;
- a full-scan aggregate (`SELECT pos, count(*) ... GROUP BY pos`) over a vlake table against
  DataFusion over the same rows as plain Parquet files.

    python3 benchmarks/sql.py              # builds vlake-bench in release mode first
    python3 benchmarks/sql.py --profile dev   # the debug-profile build the tests use (faster to build)
"""
import argparse
import json
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV = os.path.join(ROOT, "..", "shared", "data", "dev")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=os.path.join(DEV, "base.parquet"))
    parser.add_argument("--queries", default=os.path.join(DEV, "queries.parquet"))
    parser.add_argument("--copies", type=int, default=10, help="copies of the rows for the aggregate")
    parser.add_argument("--out", default=os.path.join(ROOT, "bench-out", "sql"))
    parser.add_argument("--profile", default="release", choices=["release", "dev"])
    args = parser.parse_args()

    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    # The dev build reuses what `cargo test --workspace` compiled (same features); release
    # builds just the benchmark binary.
    scope = ["--workspace", "--all-targets"] if args.profile == "dev" else ["-p", "vlake-bench"]
    subprocess.run(["cargo", "build", "--profile", args.profile, *scope], cwd=ROOT, check=True)
    bench = os.path.join(target, "debug" if args.profile == "dev" else "release", "vlake-bench")
    out = subprocess.run(
        [bench, "sql", "--data", args.data, "--queries", args.queries, "--out", args.out, "--copies", str(args.copies)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    doc = json.loads(out)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(doc, f, indent=2)

    knn = doc["knn"]
    print(f"KNN, k = 10, dev dataset, one query at a time ({args.profile} build)")
    print(f"{'path':<40}{'queries/s':>12}{'ms/query':>10}{'recall@10':>11}")
    for name, key in [
        ("Rust API, HNSW", "api_index"),
        ("SQL ORDER BY ... LIMIT, HNSW", "sql_index"),
        ("SQL vector_search('[..]'), HNSW", "sql_function_index"),
        ("SQL PREPARE/EXECUTE knn('[..]'), HNSW", "sql_prepared_index"),
        ("SQL planned once, with_param_values", "sql_params_index"),
        ("Rust API, exact", "api_exact"),
        ("SQL vector_search([..]), exact", "sql_exact"),
        ("SQL vector_search('[..]'), exact", "sql_exact_text"),
    ]:
        r = knn[key]
        print(f"{name:<40}{r['qps']:>12.0f}{r['ms_per_query']:>10.3f}{r['recall']:>11.3f}")
    print(f"SQL overhead: HNSW {knn['sql_overhead_index']:+.1%} (vector_search with a string query "
          f"{knn['sql_overhead_function_index']:+.1%}, prepared statement {knn['sql_overhead_prepared_index']:+.1%}, "
          f"bound from Rust {knn['sql_overhead_params_index']:+.1%}), exact {knn['sql_overhead_exact']:+.1%} "
          f"(with a string query {knn['sql_overhead_exact_text']:+.1%}); "
          f"planning alone {knn['sql_plan_ms']:.3f} ms/query")
    print(f"A bound statement: binding + analysing + optimising {knn['sql_params_logical_plan_ms']:.3f} ms/query; "
          f"all planning, the search included, {knn['sql_params_physical_plan_ms']:.3f} ms/query")
    print(f"A kept ORDER BY query: parsing {knn['sql_kept_parse_ms']:.3f} ms, its kept plan and search "
          f"{knn['sql_kept_search_ms']:.3f} ms, collecting {knn['sql_kept_collect_ms']:.3f} ms per query")
    print()
    print("Full-scan aggregates, best of 20 runs")
    print("(Parquet files zstd-compressed like vlake's; both read strings as Utf8View; 'plain' is DataFusion reading them as Utf8)")
    print(f"{'query':<34}{'rows':>8}{'vlake s':>9}{'parquet s':>10}{'speed':>7}{'plain s':>9}{'speed':>7}")
    for a in doc["aggregates"]:
        print(
            f"{a['query']:<34}{a['rows']:>8}{a['vlake_s']:>9.4f}{a['parquet_s']:>10.4f}{a['vlake_vs_parquet']:>6.2f}x"
            f"{a['parquet_plain_strings_s']:>9.4f}{a['vlake_vs_parquet_plain_strings']:>6.2f}x"
        )


if __name__ == "__main__":
    main()
