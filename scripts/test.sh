#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test of the workspace, then the Python
# package (built into the same target directory) and its tests, and the DuckDB extension's.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all -- --check
# The demo, the Python module and vlake-bench reuse the dependency builds of the commands below.
python3 scripts/shared_build.py
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

# The Python package, with the dev profile (the release build of the stack takes far longer).
python3 -m pip install --quiet --disable-pip-version-check -r python/requirements-test.txt
MATURIN_PEP517_ARGS="--profile dev --locked" python3 -m pip install --quiet --disable-pip-version-check \
    --no-build-isolation --force-reinstall --no-deps ./python
# The DuckDB extension: built once, tested with the rest of python/tests under the newest duckdb
# and again under duckdb 1.5.6, the oldest release it loads in.
VLAKE_DUCKDB_EXTENSION="$(scripts/build_duckdb_extension.sh)"
export VLAKE_DUCKDB_EXTENSION
python3 -m pytest -q python/tests
python3 -m venv --system-site-packages target/duckdb/venv-1.5.6
# (duckdb 1.5.6 needs pytz to hand TIMESTAMPTZ values to Python; duckdb-cli is the CLI binary.)
target/duckdb/venv-1.5.6/bin/python -m pip install --quiet --disable-pip-version-check duckdb==1.5.6 duckdb-cli==1.5.6 pytz
target/duckdb/venv-1.5.6/bin/python -m pytest -q python/tests/test_duckdb.py
