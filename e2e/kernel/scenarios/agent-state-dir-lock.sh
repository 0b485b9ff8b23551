# One agent per state directory: a second agent, and a manual --once run,
# with the same --state-dir exit non-zero with an error naming the lock
# holder (its pid and command line), change nothing, and the first agent is
# unaffected: it still converges a change made afterwards.
. /lab/scenario.sh
STATE=/run/lab/state/dir1
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_write web <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: web
  namespace: default
spec:
  address: 203.0.113.10
  port: 8080
  scheduler: wrr
  forwarding: NAT
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: web
YAML
rs() {
manifest_write "web-$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-$1
  namespace: default
  labels:
    app: web
spec:
  address: 10.0.1.1$1
  port: 80
  weight: $2
YAML
}
rs 1 1; rs 2 1
agent_start dir1
ipvs_expect dir1 30 <<'RULES'
-A -t 203.0.113.10:8080 -s wrr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 1
RULES
FIRST="$(cat "$LAB_AGENT_RUN/dir1.pid")"
LEDGER_BEFORE="$(cat "$STATE/ledger.json")"

# second NAME ARG...: run another agent on dir1's state directory (another
# listen port, so that only the lock can stop it); it must exit non-zero
# within 30 s with an error naming the first agent.
second() {
    _name="$1"; shift
    _out="$(nsx_full dir1 timeout 30 "$LAB_AGENT_BIN" --config-dir "$LAB_MANIFESTS" --node-name dir1 \
        --state-dir "$STATE" --listen 127.0.0.1:9478 "$@" 2>&1)"
    _rc=$?
    echo "$_name: exit $_rc: $(echo "$_out" | tail -n 1)"
    # (busybox timeout passes on the stopped agent's status, 0, not 124)
    echo "$_out" | grep -q -e "node-agent started" -e "configuration loaded and planned" \
        && fail "$_name started on the same state directory as the running agent (stopped after 30 s, exit $_rc)"
    [ "$_rc" -ne 0 ] || fail "$_name on the same state directory exited 0"
    echo "$_out" | grep -q "state directory $STATE is in use by another node-agent" \
        || fail "$_name's error does not say the state directory is in use: $(echo "$_out" | tail -n 1)"
    echo "$_out" | grep -q "pid $FIRST, started .*command: $LAB_AGENT_BIN --config-dir" \
        || fail "$_name's error does not name the holder (pid $FIRST and its command): $(echo "$_out" | tail -n 1)"
}
second "a second agent"
second "a manual --once run" --once

agent_alive dir1 || fail "the first agent died"
[ "$(cat "$STATE/ledger.json")" = "$LEDGER_BEFORE" ] || fail "the refused agents changed ledger.json"
grep -q "^pid $FIRST, " "$STATE/agent.lock" || fail "the lock file no longer names the first agent: $(cat "$STATE/agent.lock")"
echo "ok: both refused, naming pid $FIRST; the lock file still names it"

# The first agent carries on.
rs 2 3; rs 3 2
ipvs_expect dir1 30 <<'RULES'
-A -t 203.0.113.10:8080 -s wrr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 3
-a -t 203.0.113.10:8080 -r 10.0.1.13:80 -m -w 2
RULES
wait_until 15 addr_held dir1 203.0.113.10 || true
expect_vip_on dir1 203.0.113.10
fetch_dist 6 "http://203.0.113.10:8080/"
expect_no_errors

# Once the first agent is gone (even by SIGKILL), the lock goes with it.
agent_stop dir1 KILL
agent_start dir1
sleep 1
agent_alive dir1 || fail "an agent started after the first was killed did not run: $(tail -n 3 "$(_agent_logs)/dir1.log")"
grep -q "^pid $(cat "$LAB_AGENT_RUN/dir1.pid"), " "$STATE/agent.lock" || fail "the new agent did not take the lock: $(cat "$STATE/agent.lock")"
echo "ok: a restarted agent takes the lock"
