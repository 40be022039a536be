#!/usr/bin/env bash
# Builds the fuzz targets and runs each for 30 seconds on the committed corpus (fuzz/corpus/<target>).
# Exits non-zero on a crash (the reproducer lands in fuzz/artifacts/<target>/) or a build failure.
# New inputs go to a temporary folder, so the committed corpus is never changed.
# Usage: bash fuzz/smoke.sh [seconds per target, default 30]
set -euo pipefail

seconds="${1:-30}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

# cargo fuzz passes -Z flags to rustc: allow them on the stable toolchain.
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build

run() {
    local target="$1"
    shift
    local log="$scratch/$target.log"
    local rc=0
    mkdir -p "$scratch/$target"
    echo "== $target: ${seconds}s"
    cargo fuzz run "$target" "$scratch/$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 "$@" >"$log" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::(number_of_executed_units|average_exec_per_sec))' "$log" || true
    else
        tail -n 60 "$log"
    fi
    return "$rc"
}

status=0
run parse_delivery -dict=fuzz/dict/json.dict || status=1
run verify_signature || status=1

if [ "$status" -ne 0 ]; then
    echo "fuzz smoke: a target crashed; see fuzz/artifacts/" >&2
fi
exit "$status"
