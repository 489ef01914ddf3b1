#!/usr/bin/env bash
# Builds the DuckDB extension (crates/vlake-duckdb) and writes `vlake.duckdb_extension`: the
# cdylib followed by DuckDB's 512-byte metadata footer (ABI C_STRUCT, C-API v1.5.6), which
# DuckDB 1.5.6 and later check before loading an extension. Prints the extension's path.
#
#   scripts/build_duckdb_extension.sh [--profile dev|release] [--out DIR]
#
# Load it with unsigned extensions allowed:
#   python: duckdb.connect(config={"allow_unsigned_extensions": "true"}).execute("LOAD '/abs/path/vlake.duckdb_extension'")
#   CLI:    duckdb -unsigned -c "LOAD '/abs/path/vlake.duckdb_extension'"
# The platform recorded must equal DuckDB's `PRAGMA platform`; set VLAKE_DUCKDB_PLATFORM to
# override the one derived from this machine.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=dev
out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) profile="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "usage: $0 [--profile dev|release] [--out DIR]" >&2; exit 2 ;;
    esac
done

target_dir="${CARGO_TARGET_DIR:-target}"
cargo build --locked -p vlake-duckdb --profile "$profile" >&2
case "$profile" in dev) subdir=debug ;; *) subdir="$profile" ;; esac
case "$(uname -s)" in
    Linux) lib="$target_dir/$subdir/libvlake_duckdb.so"; os=linux ;;
    Darwin) lib="$target_dir/$subdir/libvlake_duckdb.dylib"; os=osx ;;
    *) echo "unsupported OS $(uname -s)" >&2; exit 1 ;;
esac
case "$(uname -m)" in
    x86_64|amd64) arch=amd64 ;;
    aarch64|arm64) arch=arm64 ;;
    *) echo "unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac
platform="${VLAKE_DUCKDB_PLATFORM:-${os}_${arch}}"
out="${out:-target/duckdb}"
mkdir -p "$out"
ext="$out/vlake.duckdb_extension"

# The footer, as DuckDB's ParseExtensionMetaData reads it (src/main/extension/extension_load.cpp):
# a WebAssembly custom-section header naming it, then 8 fields of 32 NUL-padded bytes written
# last field first (magic "4", platform, C-API version, extension version, ABI type, 3 unused),
# then 256 bytes of (empty) signature. DuckDB reads the last 512 bytes.
python3 - "$lib" "$ext" "$platform" <<'PY'
import shutil, sys
lib, ext, platform = sys.argv[1:4]
version = "0.1.0"
def field(s):
    b = s.encode("ascii")
    assert len(b) <= 32, s
    return b.ljust(32, b"\0")
shutil.copyfile(lib, ext)
with open(ext, "ab") as f:
    f.write(b"\x00\x93\x04\x10duckdb_signature\x80\x04")
    for value in ("", "", "", "C_STRUCT", version, "v1.5.6", platform, "4"):
        f.write(field(value))
    f.write(b"\0" * 256)
PY
echo "$(cd "$out" && pwd)/vlake.duckdb_extension"
