# shellcheck shell=bash
# What the joined-lab parts of `make bench` (joined.sh, failover.sh, cp.sh) share.
# The caller defines HERE, calls bench_args and bench_part first, and exports
# LVS_JOINED_DIR before it starts the lab.

# bench_args ARG...: the arguments every part takes: --quick (QUICK=1) and
# --out DIR (OUT, default target/bench); --help prints the script's header.
# QUICK is the caller's.
# shellcheck disable=SC2034
bench_args() {
    QUICK=0 OUT="$LVS_REPO/target/bench"
    while [ $# -gt 0 ]; do
        case "$1" in
            --quick) QUICK=1; shift ;;
            --out) OUT="$2"; shift 2 ;;
            -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
            *) echo "unknown argument $1" >&2; exit 2 ;;
        esac
    done
}

# bench_part NAME: the part's directories and files (CACHE, WORK, RAW, its
# clock t_start), its binaries (AGENT_BIN, OPERATOR_BIN: release builds unless
# NODE_AGENT_BIN / LVS_OPERATOR_BIN say otherwise), and NAME in messages.
bench_part() {
    BENCH_PART=$1
    CACHE="${BENCH_CACHE:-$LVS_CACHE/bench}"
    WORK="$OUT/$1"
    RAW="$OUT/$1-raw.txt"
    mkdir -p "$CACHE" "$WORK"
    : >"$RAW"
    t_start=$SECONDS
    AGENT_BIN=${NODE_AGENT_BIN:-$LVS_REPO/target/release/node-agent}
    OPERATOR_BIN=${LVS_OPERATOR_BIN:-$LVS_REPO/target/release/lvs-operator}
    [ -x "$AGENT_BIN" ] || fail "no node agent at $AGENT_BIN (cargo build --release -p lvs-node-agent)"
    [ -x "$OPERATOR_BIN" ] || fail "no operator at $OPERATOR_BIN (cargo build --release -p lvs-operator)"
}

# step MESSAGE: a progress line with the seconds since the start.
step() { printf '[%s %4ds] %s\n' "$BENCH_PART" "$((SECONDS - t_start))" "$*" >&2; }
fail() { echo "error: $BENCH_PART bench: $*" >&2; exit 1; }
# result LINE: one result for report.py, also shown.
result() { echo "$*" >>"$RAW"; echo "  $*" >&2; }

# bench_joinedbench: TOOL, the Go request/latency tool, built unless run.sh
# built it alongside the Rust build.
bench_joinedbench() {
    GO="${GO:-/usr/local/go/bin/go}"
    [ -x "$GO" ] || GO="$(command -v go || true)"
    TOOL="$CACHE/joinedbench"
    if [ "${BENCH_JOINEDBENCH_BUILT:-0}" = 1 ] && [ -x "$TOOL" ]; then
        step "joinedbench: built by run.sh alongside the Rust build"
        return
    fi
    [ -n "$GO" ] || fail "no Go toolchain (expected /usr/local/go/bin/go)"
    step "building joinedbench (Go, static)"
    (cd "$HERE/joinedbench" && GOTOOLCHAIN=local CGO_ENABLED=0 "$GO" build -trimpath -ldflags '-s -w' -o "$TOOL" .) \
        >"$WORK/go-build.log" 2>&1 || { cat "$WORK/go-build.log" >&2; fail "go build of e2e/bench/joinedbench failed"; }
}

# bench_lab_finish NAME: the EXIT trap: once the lab was started (lab_up=1),
# keep its logs in $WORK/logs, stop it, and remove its files unless the part
# failed.
bench_lab_finish() {
    local rc=$? name=$1
    if ((lab_up)); then
        "$LVS_REPO/e2e/joined/lab.sh" logs "$WORK/logs" >/dev/null 2>&1 || true
        "$LVS_REPO/e2e/joined/lab.sh" down >>"$WORK/lab-down.log" 2>&1 || echo "$name: lab.sh down failed (log: $WORK/lab-down.log)" >&2
        cp "$LVS_JOINED_DIR/operator.log" "$WORK/logs/operator.log" 2>/dev/null || true
        if ((rc == 0)); then rm -rf "$LVS_JOINED_DIR"; else echo "$name: lab files kept in $LVS_JOINED_DIR" >&2; fi
    fi
    step "done in $((SECONDS - t_start)) s (exit $rc)"
}

# bench_lab_up VAR=VALUE...: the joined lab up with these settings and the
# part's binaries (lab_up=1 from the start, so the EXIT trap stops it);
# lab_up_s is how long it took.
bench_lab_up() {
    local t0=$SECONDS
    mkdir -p "$LVS_JOINED_DIR"
    lab_up=1
    if ! env "$@" LVS_JOINED_NO_BUILD=1 NODE_AGENT_BIN="$AGENT_BIN" LVS_OPERATOR_BIN="$OPERATOR_BIN" \
        "$LVS_REPO/e2e/joined/lab.sh" up >"$WORK/lab-up.log" 2>&1; then
        tail -n 25 "$WORK/lab-up.log" >&2
        fail "the joined lab did not come up (log: $WORK/lab-up.log; lab files: $LVS_JOINED_DIR)"
    fi
    lab_up_s=$((SECONDS - t0))
    jl_load_env
}
