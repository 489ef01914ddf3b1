#!/usr/bin/env bash
# The whole test suite: formatting, lints, every Rust test of the workspace, then the Python
# package (built into the same target directory) and its tests.
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
python3 -m pytest -q python/tests
