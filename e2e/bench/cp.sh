#!/usr/bin/env bash
# The control-plane part of `make bench`: the operator against 10k
# VirtualServices and N simulated node agents in the cluster lab (a real API
# server, no VM).
#
#   cp.sh [--quick] [--out DIR]
#
# Starts a cluster lab (e2e/cluster/lab.sh up), installs the chart with the
# lab's pool values, and for each agent count N in BENCH_CP_AGENTS starts a
# fresh operator (release build, the chart's operator ServiceAccount) and
# runs the simulation (operator/examples/cp_sim.rs):
#   1. N Nodes, then BENCH_CP_N VirtualServices, each directed by 2 of the
#      nodes: operator_status_catchup_s (the last one written -> every status
#      current);
#   2. N simulated agents, each a client with its own token of the agent's
#      ServiceAccount bound to its Node, write their LvsNodes as the agent
#      does: cp_converge_s (the last report written -> every VirtualService
#      Programmed), the operator's RSS and CPU;
#   3. at rest (the agents' watches, and their report refresh):
#      agent_api_rps_idle, the agents' requests per second per 100 agents,
#      with the refresh interval (600 s) and watch timeout (1800 s) scaled by
#      BENCH_CP_TIME_SCALE and the rate scaled back, counted over one period
#      of the longer of the two.
# Then, with no operator running, the API server's write floor: BENCH_CP_N
# status writes as the operator sends them, under the operator's
# ServiceAccount and concurrency, with and without an Event each
# (apiserver_write_floor): the least time any operator needs for one
# status step on this machine.
# The objects are deleted after each N. Writes key=value lines to
# DIR/cp-raw.txt (report.py --extra) and the operator's logs to DIR/cp/.
#
# Environment: BENCH_CP_AGENTS ("50 500"; --quick "20"), BENCH_CP_N (10000;
# --quick 1000), BENCH_CP_TIME_SCALE (30), BENCH_CP_IDLE_WINDOW_S (seconds
# of the scaled run; default one period, 60 at scale 30), BENCH_CP_SIM_ARGS (more cp_sim flags, e.g. --full-watches),
# LVS_OPERATOR_BIN / CP_SIM_BIN (default
# $CARGO_TARGET_DIR/release/{lvs-operator,examples/cp_sim}), LVS_CACHE.
# Exit status non-zero, with the reason on stderr, when the lab does not come
# up or a step fails; a missed target is no failure.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"
# shellcheck source=joined-common.sh
. "$HERE/joined-common.sh"

bench_args "$@"
if [ "$QUICK" -eq 1 ]; then
    AGENTS=${BENCH_CP_AGENTS:-20} N=${BENCH_CP_N:-1000}
else
    AGENTS=${BENCH_CP_AGENTS:-50 500} N=${BENCH_CP_N:-10000}
fi
SCALE=${BENCH_CP_TIME_SCALE:-30} WINDOW=${BENCH_CP_IDLE_WINDOW_S:-0}
TARGET="${CARGO_TARGET_DIR:-$LVS_REPO/target}"
OPERATOR_BIN=${LVS_OPERATOR_BIN:-$TARGET/release/lvs-operator}
SIM_BIN=${CP_SIM_BIN:-$TARGET/release/examples/cp_sim}
# step, fail and result (joined-common.sh) read these.
# shellcheck disable=SC2034
BENCH_PART=cp WORK="$OUT/cp" RAW="$OUT/cp-raw.txt" t_start=$SECONDS
mkdir -p "$WORK"
: >"$RAW"
[ -x "$OPERATOR_BIN" ] || fail "no operator at $OPERATOR_BIN (cargo build --release -p lvs-operator)"
[ -x "$SIM_BIN" ] || fail "no simulation at $SIM_BIN (cargo build --release -p lvs-operator --example cp_sim)"

export LVS_LAB_DIR="$LVS_CACHE/cluster-lab/bench-cp-$$"
lab_up=0 op_pid=
finish() {
    local rc=$?
    [ -n "$op_pid" ] && lvs_proc_stop "$LVS_LAB_DIR/operator.pid"
    if ((lab_up)); then
        cp "$LVS_LAB_DIR"/*.log "$WORK/" 2>/dev/null || true
        "$LVS_REPO/e2e/cluster/lab.sh" down >>"$WORK/lab-down.log" 2>&1 || echo "cp.sh: lab.sh down failed (log: $WORK/lab-down.log)" >&2
        if ((rc == 0)); then rm -rf "$LVS_LAB_DIR"; else echo "cp.sh: lab files kept in $LVS_LAB_DIR" >&2; fi
    fi
    step "done in $((SECONDS - t_start)) s (exit $rc)"
}
trap finish EXIT

step "the cluster lab's tools (cached after the first build)"
"$LVS_REPO/e2e/cluster/build-tools.sh" >"$WORK/build-tools.log" 2>&1 ||
    fail "e2e/cluster/build-tools.sh failed (log: $WORK/build-tools.log)"
step "cluster lab up"
mkdir -p "$LVS_LAB_DIR"
lab_up=1
t0=$SECONDS
"$LVS_REPO/e2e/cluster/lab.sh" up >"$WORK/lab-up.log" 2>&1 || fail "the cluster lab did not come up (log: $WORK/lab-up.log)"
lab_up_s=$((SECONDS - t0))
eval "$("$LVS_REPO/e2e/cluster/lab.sh" env)"
export HELM_CACHE_HOME=$LVS_LAB_DIR/helm/cache HELM_CONFIG_HOME=$LVS_LAB_DIR/helm/config HELM_DATA_HOME=$LVS_LAB_DIR/helm/data
release=lvs ns=lvs-system
helm install "$release" "$LVS_REPO/charts/lvs-operator" -n "$ns" --create-namespace \
    -f "$LVS_REPO/e2e/lib/lab-pool-values.yaml" >"$WORK/helm.log" 2>&1 || fail "helm install failed (log: $WORK/helm.log)"
kubectl wait --for condition=Established --timeout 60s crd/virtualservices.lvs.lvs-operator.io \
    crd/lvsnodes.lvs.lvs-operator.io crd/realservers.lvs.lvs-operator.io >/dev/null
okc=$LVS_LAB_DIR/operator.kubeconfig
"$LVS_REPO/e2e/cluster/sa-kubeconfig.sh" "$ns" "$release-lvs-operator-operator" "$okc"

for agents in $AGENTS; do
    port=$(lvs_free_port 18280)
    step "operator started fresh; $N VirtualServices and $agents simulated agents"
    lvs_proc_start "$LVS_LAB_DIR/operator.pid" "$WORK/operator-$agents.log" env RUST_LOG=info \
        "$OPERATOR_BIN" --kubeconfig "$okc" --namespace "$ns" --listen "127.0.0.1:$port" --log-format json
    op_pid=$(cat "$LVS_LAB_DIR/operator.pid")
    lvs_retry 60 curl -fs "http://127.0.0.1:$port/readyz" >/dev/null ||
        fail "the operator did not become ready within 60s (log: $WORK/operator-$agents.log)"
    # shellcheck disable=SC2086
    "$SIM_BIN" --kubeconfig "$KUBECONFIG" --agents "$agents" --virtual-services "$N" \
        --agent-namespace "$ns" --agent-service-account "$release-lvs-operator-agent" \
        --time-scale "$SCALE" --idle-window-s "$WINDOW" --operator-pid "$op_pid" \
        ${BENCH_CP_SIM_ARGS:-} >"$WORK/sim-$agents.out" 2>"$WORK/sim-$agents.log" ||
        { tail -n 5 "$WORK/sim-$agents.log" >&2; fail "the simulation with $agents agents failed (log: $WORK/sim-$agents.log)"; }
    while read -r line; do result "$line"; done <"$WORK/sim-$agents.out"
    curl -fsS "http://127.0.0.1:$port/metrics" >"$WORK/operator-$agents.metrics" 2>/dev/null || true
    lvs_proc_stop "$LVS_LAB_DIR/operator.pid"
    op_pid=
done
step "the API server's write floor: $N status writes, with and without an Event each, no operator running"
"$SIM_BIN" --write-floor --kubeconfig "$KUBECONFIG" --writer-kubeconfig "$okc" --virtual-services "$N" \
    >"$WORK/floor.out" 2>"$WORK/floor.log" ||
    { tail -n 5 "$WORK/floor.log" >&2; fail "the write floor failed (log: $WORK/floor.log)"; }
while read -r line; do result "$line"; done <"$WORK/floor.out"
result "metric=cp_wall wall_s=$((SECONDS - t_start)) lab_up_s=$lab_up_s agents=\"$AGENTS\" n=$N time_scale=$SCALE load=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
