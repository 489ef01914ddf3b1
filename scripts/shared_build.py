#!/usr/bin/env python3
"""Checks that the builds a developer and CI run share one set of compiled dependencies.

`cargo test --workspace`, `cargo build --workspace --all-targets`, the README's demo
(`cargo run -p vlake-cli --bin vlake`), the Python module (maturin runs `cargo rustc -p
vlake-python --lib`), `vlake-bench` and the DuckDB extension (`cargo build -p vlake-duckdb`) each resolve the features of the packages they build.
Where a third-party package gets other features in one of them than in the whole workspace's
build, cargo compiles it again, and everything that depends on it. crates/vlake-workspace-hack
gives such packages the whole workspace's features (the technique cargo-hakari automates). This
script reads cargo's unit graphs (nothing is compiled), and fails if a build would compile a
dependency that `cargo build --workspace --all-targets` and `cargo test --workspace` do not,
printing the dependency table crates/vlake-workspace-hack/Cargo.toml needs.

    python3 scripts/shared_build.py

`--unit-graph` is unstable in cargo: RUSTC_BOOTSTRAP=1 enables it for these queries only.
"""
import hashlib
import json
import os
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The whole workspace: every feature any build of ours gives a package.
UNION = {
    "workspace": ["build", "--workspace", "--all-targets"],
    "tests": ["test", "--workspace", "--no-run"],
}
# Builds that must reuse the whole workspace's dependency builds.
NARROW = {
    "demo": ["build", "-p", "vlake-cli", "--bin", "vlake"],
    "python": ["rustc", "-p", "vlake-python", "--lib", "--profile", "dev"],
    "bench": ["build", "-p", "vlake-bench"],
    "duckdb": ["build", "-p", "vlake-duckdb"],
}


def unit_graph(args):
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    cmd = ["cargo", *args, "--locked", "-Z", "unstable-options", "--unit-graph"]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"shared_build: {' '.join(cmd)} failed:\n{done.stderr}")
    return json.loads(done.stdout)["units"]


def third_party(unit):
    return unit["pkg_id"].startswith("registry+")


def unit_keys(units):
    """A key per unit that, like cargo's own hash, covers its features, profile and dependencies."""
    memo = {}

    def key(i):
        if i not in memo:
            u = units[i]
            profile = {k: v for k, v in u["profile"].items() if k != "name"}
            own = json.dumps([u["pkg_id"], u["target"]["name"], u["target"]["kind"], sorted(u["features"]),
                              profile, u["platform"], u["mode"]], sort_keys=True)
            deps = "".join(sorted(key(d["index"]) for d in u["dependencies"]))
            memo[i] = hashlib.sha1((own + deps).encode()).hexdigest()
        return memo[i]

    return {key(i): u for i, u in enumerate(units)}


def features_by_side(units):
    """Features of each third-party library, on the target side (what our crates link) and the
    host side (below a build script or proc-macro)."""
    out = defaultdict(set)
    seen = set()
    stack = [(i, "target") for i, u in enumerate(units) if not third_party(u)]
    while stack:
        i, side = stack.pop()
        if (i, side) in seen:
            continue
        seen.add((i, side))
        u = units[i]
        kinds = u["target"]["kind"]
        if "proc-macro" in kinds or ("custom-build" in kinds and u["mode"] == "build"):
            side = "host"
        if third_party(u) and u["mode"] == "build" and any(k in ("lib", "rlib", "proc-macro") for k in kinds):
            out[(side, u["pkg_id"].split("#")[1])] |= set(u["features"])
        stack.extend((d["index"], side) for d in u["dependencies"])
    return out


def main():
    union_units, union_features = {}, defaultdict(set)
    for args in UNION.values():
        units = unit_graph(args)
        union_units.update(unit_keys(units))
        for k, v in features_by_side(units).items():
            union_features[k] |= v
    need, extra = {}, []
    for name, args in NARROW.items():
        units = unit_graph(args)
        missing = [u for k, u in unit_keys(units).items() if k not in union_units and third_party(u)]
        extra += [f"{name}: {u['pkg_id'].split('#')[1]} ({u['target']['name']}, {u['mode']})" for u in missing]
        for k, v in features_by_side(units).items():
            if v != union_features[k]:
                need[k] = union_features[k]
    if not extra:
        print("shared_build: the demo, the Python module, vlake-bench and the DuckDB extension reuse the workspace's "
              "dependency builds")
        return 0
    print("shared_build: these builds would compile dependencies again:\n  " + "\n  ".join(extra))
    versions = defaultdict(set)
    for _, pkg in need:
        versions[pkg.split("@")[0]].add(pkg)
    for side, table in (("target", "dependencies"), ("host", "build-dependencies (with an empty build.rs)")):
        rows = sorted((pkg, feats) for (s, pkg), feats in need.items() if s == side)
        if rows:
            print(f"\ncrates/vlake-workspace-hack/Cargo.toml needs in [{table}]:")
        for pkg, feats in rows:
            name, version = pkg.split("@")
            parts = version.split(".")
            req = ".".join(parts[:2] if parts[0] == "0" else parts[:1])
            key = name if len(versions[name]) == 1 else f"{name}-{req.replace('.', '_')}"
            package = "" if key == name else f'package = "{name}", '
            listed = ", ".join(f'"{f}"' for f in sorted(feats))
            print(f'{key} = {{ {package}version = "{req}", default-features = false, features = [{listed}] }}')
    return 1


if __name__ == "__main__":
    sys.exit(main())
