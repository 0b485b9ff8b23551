#!/usr/bin/env bash
# The joined-lab part of `make bench`: the node agent in Kubernetes mode with
# N VirtualServices in a real API server.
#
#   joined.sh [--quick] [--out DIR]
#
# Starts a joined lab (e2e/joined/lab.sh up: kube-apiserver + etcd + the
# chart + the operator on the host, the kernel-lab VM with an agent in
# dir1's namespace), then:
#   1. creates N VirtualServices (each selecting M RealServers of a shared
#      pool, the standalone benchmark's shape) plus a latency probe's
#      VirtualService with its own two RealServers (joinedbench populate:
#      POSTs over one HTTP/2 connection pool);
#   2. waits until dir1's kernel holds N+1 services and N*M+2 destinations;
#   3. reads the agent's VmRSS/VmHWM (steady, after converging);
#   4. resets VmHWM (/proc/PID/clear_refs), stops and restarts the API server
#      (etcd stays): every watch relists; the VmHWM after the relist is the
#      peak during it;
#   5. waits until the operator leads and has made no reconcile for 5 s (the
#      relist can cost it its Lease; it then restarts and reconciles all);
#   6. K weight changes of the probe's RealServer: joinedbench latency on the
#      host PATCHes (timestamp right before the request) and a poller in
#      dir1's namespace (joinedbench probe, netlink every 10 ms) reports over
#      one TCP connection to the host when the kernel has the weight; both
#      ends are stamped with the host's clock.
# Writes key=value result lines to DIR/joined-raw.txt (report.py --extra) and
# the agent's log and per-change latencies to DIR/joined/.
#
# Environment: BENCH_JOINED_N (10000; --quick 1000), BENCH_JOINED_M (10),
# BENCH_JOINED_POOL (1000), BENCH_JOINED_CHANGES (200; --quick 20),
# BENCH_JOINED_VIP_MODE (the agent's --vip-mode, route),
# BENCH_JOINED_CONVERGE_TIMEOUT (s, 900), BENCH_JOINED_LATENCY_MAX_S (s, 240:
# no change starts after that), BENCH_CACHE (where joinedbench is built,
# default $LVS_CACHE/bench), NODE_AGENT_BIN / LVS_OPERATOR_BIN
# (default target/release/{node-agent,lvs-operator}), LVS_CACHE.
# Exit status non-zero, with the reason on stderr, when the lab does not come
# up or a step fails; a missed target is no failure.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../joined/lib.sh
. "$HERE/../joined/lib.sh"

# shellcheck source=joined-common.sh
. "$HERE/joined-common.sh"
bench_args "$@"
lvs_need_root
if [ "$QUICK" -eq 1 ]; then
    N=${BENCH_JOINED_N:-1000} CHANGES=${BENCH_JOINED_CHANGES:-20}
else
    N=${BENCH_JOINED_N:-10000} CHANGES=${BENCH_JOINED_CHANGES:-200}
fi
M=${BENCH_JOINED_M:-10} POOL=${BENCH_JOINED_POOL:-1000}
CONVERGE_TIMEOUT=${BENCH_JOINED_CONVERGE_TIMEOUT:-900}
# The changes stop after this long even if fewer than CHANGES were made (the
# result line says how many): at 10k x 10 one change can wait for a full
# resync of the agent, and make bench has a 30-minute budget.
LATENCY_MAX_S=${BENCH_JOINED_LATENCY_MAX_S:-240}
bench_part joined
bench_joinedbench

# --- the lab ---------------------------------------------------------------------------
export LVS_JOINED_DIR="$LVS_CACHE/joined-lab/bench-$$"
lab_up=0
trap 'bench_lab_finish joined.sh' EXIT

for t in etcd kube-apiserver kubectl helm; do
    [ -x "$LVS_CACHE/cluster-lab/bin/$t" ] && continue
    step "note: the cluster lab's $t is not built yet: lab.sh builds etcd, kube-apiserver, kubectl and helm from Go modules first (cached afterwards in $LVS_CACHE/cluster-lab; 20-30 min on 2 cores, outside the bench budget)"
    break
done
step "joined lab up (kube-apiserver + etcd + chart + operator on the host; VM with dir1's agent in Kubernetes mode)"
# Only the director's agent runs: the lab's nodes share the VM's two vCPUs,
# and six more agents planning the same 10k objects would take the CPU a
# real director has to itself.
# Its VIPs are local routes, as in the standalone benchmark (--vip-mode
# route, the choice for many IPv4 VIPs: each address add walks the
# interface's address list).
bench_lab_up LVS_JOINED_AGENTS=dir1 LVS_JOINED_VM_MEM="${BENCH_JOINED_VM_MEM:-2048}" \
    LVS_JOINED_AGENT_VIP_MODE="${BENCH_JOINED_VIP_MODE:-route}"
PKI="$LVS_LAB_DIR/pki"
API=(-server "$LVS_LAB_APISERVER" -ca "$LVS_LAB_CA" -cert "$PKI/admin.crt" -key "$PKI/admin.key")

jl_exec root 'cat >/run/lab/joinedbench && chmod +x /run/lab/joinedbench' "$TOOL" ||
    fail "copying joinedbench into the VM failed"
agent_pid() { jl_exec root 'cat /run/lab/agents/dir1.pid'; }
PID=$(agent_pid) || fail "no pid of dir1's agent"
agent_starts() { jl_exec root 'cat /run/lab/agents/dir1.starts'; }
# mem_kb: "VmRSS VmHWM" of dir1's agent, in kB.
mem_kb() {
    jl_exec root "awk '/^VmRSS:/{r=\$2} /^VmHWM:/{h=\$2} END{print r, h}' /proc/$PID/status"
}
agent_log_lines() { jl_exec root 'wc -l </run/lab/logs/dir1.log'; }
ncpu_s() { ps -o times= -p "$1" 2>/dev/null | tr -d ' ' || echo NA; }

# --- 1. populate -------------------------------------------------------------------------
# The benchmark's VIPs (172.16.0.1 + i, the probe's 172.31.255.1) lie outside
# the lab's pool: a pool of their own, in every pool's index (the admission
# policy reads the index) before the first VirtualService is written.
step "address pool bench (172.16.0.0/12) for the benchmark's VIPs"
kubectl apply -f - >>"$WORK/pool.log" 2>&1 <<'EOF' || fail "creating LvsAddressPool bench failed (log: $WORK/pool.log)"
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: LvsAddressPool
metadata:
  name: bench
spec:
  addresses: [172.16.0.0/12]
  shared: true
  autoAssign: false
  allowAllDirectors: true
  realServerNodeSelector: {}
EOF
indexed() {
    kubectl get lvsaddresspools -o json 2>/dev/null |
        jq -e '[.items[] | .status.index.pools // [] | map(.name) | index("bench") != null] | all' >/dev/null
}
lvs_retry 60 indexed || fail "the operator did not list pool bench in every pool's index within 60s: $(kubectl get lvsaddresspools -o json 2>&1 | jq -c '[.items[]? | {name: .metadata.name, pools: [.status.index.pools[]?.name]}]' 2>&1 | head -c 400)"
step "creating $N VirtualServices x $M RealServers (pool $POOL) and the latency probe"
t_pop=$SECONDS
pop=$("$TOOL" populate "${API[@]}" -n "$N" -m "$M" -pool "$POOL") || fail "populate failed"
result "$pop"

# --- 2. converge ---------------------------------------------------------------------------
step "waiting for dir1's kernel to hold $((N + 1)) services"
want_svc=$((N + 1))
deadline=$((SECONDS + CONVERGE_TIMEOUT))
have=0
while :; do
    have=$(LVS_JOINED_CMD_TIMEOUT=60 jl_exec dir1 '/run/lab/joinedbench count' 2>/dev/null || echo 0)
    [ "$have" -ge "$want_svc" ] && break
    [ "$SECONDS" -lt "$deadline" ] || fail "dir1's kernel holds $have of $want_svc services after ${CONVERGE_TIMEOUT}s (agent log: $WORK/logs/agent-dir1.log)"
    sleep 2
done
conv_s=$((SECONDS - t_pop))
want_dst=$((N * M + 2))
dst=0
for _ in $(seq 60); do
    dst=$(LVS_JOINED_CMD_TIMEOUT=120 jl_exec dir1 "ipvsadm -Ln | grep -c -- '->.*Masq'" || echo 0)
    [ "$dst" -ge "$want_dst" ] && break
    sleep 2
done
[ "$dst" -ge "$want_dst" ] || fail "dir1's kernel holds $dst of $want_dst destinations"
conv_all_s=$((SECONDS - t_pop))
[ "$(agent_starts)" = 1 ] || fail "dir1's agent restarted while converging (log: $WORK/logs/agent-dir1.log)"
result "metric=joined_converge contender=agent n=$N m=$M services=$have dests=$dst from_populate_start_s=$conv_all_s services_s=$conv_s lab_up_s=$lab_up_s operator_cpu=$(ncpu_s "$(cat "$LVS_JOINED_DIR/operator.child" 2>/dev/null || echo 0)") apiserver_cpu=$(ncpu_s "$(cat "$LVS_LAB_DIR/kube-apiserver.pid" 2>/dev/null || echo 0)")"

# --- 3. steady memory ------------------------------------------------------------------------
sleep 5
read -r rss hwm <<<"$(mem_kb)" || fail "reading dir1's agent's memory"
result "metric=rss_k8s contender=agent n=$N m=$M what=converged vmrss_kb=$rss vmhwm_kb=$hwm"

# --- 4. forced relist ----------------------------------------------------------------------
step "forced relist: API server stopped for 5 s and started again"
jl_exec root "echo 5 >/proc/$PID/clear_refs" || fail "resetting VmHWM (clear_refs) failed"
mark=$(agent_log_lines)
# relisted: every kind has started a relist since the mark, and the lists were
# complete again after the last of them (the agent logs both).
relisted() {
    jl_exec root "tail -n +$((mark + 1)) /run/lab/logs/dir1.log" | awk '
        /relisting; no snapshot/ { if ($0 ~ /kind="VirtualService"/) v = NR; if ($0 ~ /kind="RealServer"/) r = NR; if ($0 ~ /kind="Node"/) n = NR }
        /every list complete again/ { c = NR }
        END { last = v; if (r > last) last = r; if (n > last) last = n; exit !(v && r && n && c > last) }'
}
# A write to etcd while the API server is down moves etcd's revision past
# every watch's last resourceVersion: the restarted API server's watch cache
# starts there, so each of the agent's watches gets "410 Gone" and relists. A
# write through the API server before the stop is not enough: a bookmark that
# comes after it brings a watch up to date, which then resumes without a list.
LVS_LAB_DIR="$LVS_JOINED_DIR/cluster" "$LVS_REPO/e2e/cluster/lab.sh" stop-apiserver >>"$WORK/apiserver.log" 2>&1 ||
    fail "stop-apiserver failed"
mark_key=$(printf '/lvs-bench/relist-mark' | base64 -w0)
curl -fsS -X POST "$LVS_LAB_ETCD/v3/kv/put" -d "{\"key\":\"$mark_key\",\"value\":\"$(printf '%s' "$$" | base64 -w0)\"}" \
    >>"$WORK/apiserver.log" 2>&1 || fail "writing the relist mark to etcd ($LVS_LAB_ETCD) failed"
sleep 5
t_rl=$SECONDS
LVS_LAB_DIR="$LVS_JOINED_DIR/cluster" "$LVS_REPO/e2e/cluster/lab.sh" start-apiserver >>"$WORK/apiserver.log" 2>&1 ||
    fail "start-apiserver failed (log: $WORK/apiserver.log)"
deadline=$((SECONDS + 300))
until relisted; do
    [ "$SECONDS" -lt "$deadline" ] || fail "dir1's agent did not relist every kind within 300 s after the API server came back"
    sleep 1
done
relist_s=$((SECONDS - t_rl))
sleep 5
read -r rss2 hwm2 <<<"$(mem_kb)" || fail "reading dir1's agent's memory"
[ "$(agent_starts)" = 1 ] || fail "dir1's agent restarted during the relist"
result "metric=rss_k8s contender=agent n=$N m=$M what=relist vmrss_kb=$rss2 vmhwm_kb=$hwm2 relist_s=$relist_s"
# operator_counts: the operator's status writes (applied) and reconciles so far.
operator_counts() {
    curl -fsS "$LVS_JOINED_OPERATOR_METRICS" 2>/dev/null | awk '
        /^lvs_operator_status_writes_total\{.*result="applied"/ { w += $NF }
        /^lvs_operator_reconciles_total\{/ { r += $NF }
        END { if (NR) printf "%d %d\n", w, r }'
}

# The operator can lose its Lease while the API server is away; it then
# restarts and reconciles every object once. Wait until it leads and has
# caught up (no reconcile for 5 s), so its catch-up does not share the API
# server and the host's cores with the changes (in the run of 2026-12-07 it
# made 14,323 reconciles and 1,637 status writes during the 200 changes). At most 300 s; the result line says how
# long it took and whether it settled.
t_settle=$SECONDS
deadline=$((SECONDS + 300))
settled=0 last="" same_since=$SECONDS
while [ "$SECONDS" -lt "$deadline" ]; do
    if [ "$(kubectl get lease lvs-operator-leader -n lvs-system -o jsonpath='{.spec.holderIdentity}' 2>/dev/null)" = lvs-operator-lab ] &&
        curl -fsS "${LVS_JOINED_OPERATOR_METRICS%/metrics}/readyz" >/dev/null 2>&1; then
        now="$(operator_counts | cut -d' ' -f2)"
        if [ -n "$now" ] && [ "$now" = "$last" ]; then
            [ $((SECONDS - same_since)) -ge 5 ] && { settled=1; break; }
        else
            last="$now" same_since=$SECONDS
        fi
    fi
    sleep 1
done
result "metric=joined_operator_settle contender=operator n=$N m=$M settle_s=$((SECONDS - t_settle)) settled=$settled reconciles=${last:-NA}"

# --- 6. apply -> kernel latency --------------------------------------------------------------
step "$CHANGES weight changes, apply -> dir1's kernel"
log_mark=$(agent_log_lines)
read -r op_w0 op_r0 <<<"$(operator_counts)" || { op_w0=""; op_r0=""; }
"$TOOL" latency "${API[@]}" -listen 127.0.0.1:0 -port-file "$WORK/probe.port" -changes "$CHANGES" -max-duration "${LATENCY_MAX_S}s" \
    -n "$N" -m "$M" -log "$WORK/latency-per-change.txt" >"$WORK/latency.out" 2>"$WORK/latency.err" &
lat_pid=$!
for _ in $(seq 100); do [ -s "$WORK/probe.port" ] && break; sleep 0.1; done
[ -s "$WORK/probe.port" ] || fail "joinedbench latency did not start listening ($(cat "$WORK/latency.err"))"
jl_exec dir1 "/run/lab/joinedbench probe -connect 10.0.2.2:$(cat "$WORK/probe.port") >/run/lab/logs/probe.log 2>&1 </dev/null &" ||
    fail "starting the probe in dir1 failed"
wait "$lat_pid" || fail "the latency run failed: $(tail -n 3 "$WORK/latency.err") (probe log: $(jl_exec root 'tail -n 3 /run/lab/logs/probe.log' 2>&1))"
result "$(cat "$WORK/latency.out")"
# What the operator did meanwhile on the same two host cores (after it
# settled above, nothing but the changes' own statuses).
read -r op_w1 op_r1 <<<"$(operator_counts)" || { op_w1=""; op_r1=""; }
if [ -n "$op_w0" ] && [ -n "$op_w1" ]; then
    result "metric=joined_operator contender=agent n=$N m=$M status_writes_during_changes=$((op_w1 - op_w0)) reconciles_during_changes=$((op_r1 - op_r0))"
else
    step "note: the operator's metrics could not be read around the changes"
fi

# The agent's syncs during the changes: how long its own work took.
jl_exec root "tail -n +$((log_mark + 1)) /run/lab/logs/dir1.log" >"$WORK/agent-during-changes.log" || true
awk '
    /sync done/ {
        full = ($0 ~ /full=true/); e = ""
        if (match($0, /elapsed_ms=[0-9]+/)) e = substr($0, RSTART + 11, RLENGTH - 11)
        if (e == "") next
        if (full) f[nf++] = e; else s[ns++] = e
    }
    function p(a, n, q,   i, j, t, r) {
        if (n == 0) return "NA"
        for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
        r = int(q / 100 * n + 0.999999); if (r < 1) r = 1
        return a[r - 1]
    }
    END {
        printf "metric=joined_sync contender=agent n=%d m=%d incremental=%d incr_p50_ms=%s incr_p99_ms=%s full=%d full_p50_ms=%s full_max_ms=%s\n",
            N, M, ns, p(s, ns, 50), p(s, ns, 99), nf, p(f, nf, 50), p(f, nf, 100)
    }' N="$N" M="$M" "$WORK/agent-during-changes.log" >"$WORK/sync.txt"
result "$(cat "$WORK/sync.txt")"
# Where the time goes: watch delivery, queueing, the sync, the probe's report.
if parts=$(python3 "$HERE/latency_parts.py" "$WORK/latency-per-change.txt" "$WORK/agent-during-changes.log" "$N" "$M" 2>&1); then
    result "$parts"
else
    step "note: no latency breakdown: $parts"
fi
result "metric=joined_wall contender=agent n=$N m=$M wall_s=$((SECONDS - t_start))"
