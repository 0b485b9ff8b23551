#!/usr/bin/env bash
# Runs every fuzz target for a while (`make fuzz`; not part of `make test`).
#
#   fuzz/run.sh [SECONDS-PER-TARGET] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). Each
# target's corpus lives under $LVS_CACHE/fuzz/<target>, seeded from the
# project's own inputs: ipvs/tests/corpus for parse_datagram, the importers'
# fixtures (plugin/tests/fixtures) for import_ipvsadm and import_keepalived.
# A crash leaves its input in fuzz/artifacts/<target>/; add it to the unit
# tests as a regression before fixing it.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(dirname "$HERE")"
CACHE="${LVS_CACHE:-$REPO/.cache}/fuzz"
SECS="${1:-60}"
shift || true
TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(parse_datagram import_ipvsadm import_keepalived)
cargo +nightly fuzz --version >/dev/null 2>&1 \
    || { echo "make fuzz: needs cargo-fuzz on a nightly toolchain (cargo install cargo-fuzz)" >&2; exit 1; }
for t in "${TARGETS[@]}"; do
    corpus="$CACHE/$t"
    mkdir -p "$corpus"
    case "$t" in
        parse_datagram) cp -n "$REPO"/ipvs/tests/corpus/* "$corpus"/ 2>/dev/null || true; max_len=4096 ;;
        import_ipvsadm) cp -n "$REPO"/plugin/tests/fixtures/*/*.rules "$corpus"/; max_len=8192 ;;
        import_keepalived) cp -n "$REPO"/plugin/tests/fixtures/*/*.conf "$corpus"/; max_len=8192 ;;
        *) echo "unknown fuzz target $t" >&2; exit 2 ;;
    esac
    echo "== $t for ${SECS}s (corpus $corpus)"
    (cd "$HERE" && cargo +nightly fuzz run "$t" "$corpus" -- \
        -max_total_time="$SECS" -max_len="$max_len" -print_final_stats=1)
done
