#!/usr/bin/env bash
# Build the lvs-ipvs examples and run tests/vm/smoke.sh in the kernel lab VM
# (e2e/kernel). Exit status: the smoke test's. Output lands in
# ${LVS_CACHE:-<repo>/.cache}/ipvs-smoke (console.log has the transcript).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$REPO"
LVS_CACHE="${LVS_CACHE:-$REPO/.cache}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
cargo build -p lvs-ipvs --examples
exec e2e/kernel/run-vm.sh --out "$LVS_CACHE/ipvs-smoke" \
    --add "$TARGET/debug/examples/ipvs-dump:/usr/bin/ipvs-dump" \
    --add "$TARGET/debug/examples/ipvs-apply:/usr/bin/ipvs-apply" \
    "$@" ipvs/tests/vm/smoke.sh
