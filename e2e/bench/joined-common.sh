# shellcheck shell=bash
# What the joined-lab parts of `make bench` (joined.sh, failover.sh) share.
# The caller defines step, fail, HERE, CACHE, WORK, t_start and exports
# LVS_JOINED_DIR; NAME below is its name in messages.

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
