# The operator (target/debug/lvs-operator) as processes on the host, each with
# a kubeconfig for the chart's operator ServiceAccount, so the chart's RBAC is
# what it works under. Agents are played by hand: LvsNode reports written with
# agent tokens bound to their Nodes (the admission policy is on).
#
#   LVS_OPERATOR_BIN  the operator binary (default <repo>/target/debug/lvs-operator)

op_vs=virtualservices.lvs.lvs-operator.io
op_rs=realservers.lvs.lvs-operator.io
op_ln=lvsnodes.lvs.lvs-operator.io

# op_wait SECONDS JQ KUBECTL-GET-ARGS... -> poll `kubectl get -o json ARGS`
# until JQ (jq -e) holds; the last JSON seen stays in $op_last.
op_wait() {
  local timeout=$1 expr=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    op_last=$(kubectl get -o json "$@" 2>&1) || true
    jq -e "$expr" <<<"$op_last" >/dev/null 2>&1 && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# op_conds -> "Type=Status/Reason ..." of the JSON in $op_last, for messages.
op_conds() {
  jq -r '[.status.conditions[]? | "\(.type)=\(.status)/\(.reason)"] | join(" ") +
    " observedGeneration=\(.status.observedGeneration) generation=\(.metadata.generation)" +
    " realServers=\(.status.realServers.summary)"' <<<"$op_last" 2>/dev/null || first_line "$op_last"
}

# jq helpers over a VirtualService
op_jq_defs='def cond($t): [.status.conditions[]? | select(.type == $t)][0];
  def is($t; $s): cond($t).status == $s;
  def current: .status.observedGeneration == .metadata.generation;'

op_lease_holder() {
  kubectl get lease lvs-operator-leader -n "$lvs_ns" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true
}

# op_report NODE KUBECONFIG SERVICES-JSON [VIPS-JSON] -> the agent of NODE
# writes its LvsNode status (status.vips, the director HA roles, removed when
# VIPS-JSON is not given).
op_report() {
  local node=$1 kc=$2 services=$3 vips=${4:-null}
  # The agent's ServiceAccount may not GET; whether it exists is the test's question.
  kubectl get "$op_ln" "$node" >/dev/null 2>&1 ||
    kubectl --kubeconfig "$kc" create -f - <<<"{\"apiVersion\":\"lvs.lvs-operator.io/v1alpha1\",\"kind\":\"LvsNode\",\"metadata\":{\"name\":\"$node\"},\"spec\":{\"nodeName\":\"$node\"}}"
  local ok errs
  ok=$(jq '[.[] | select((.error // "") == "")] | length' <<<"$services")
  errs=$(jq '[.[] | select((.error // "") != "")] | length' <<<"$services")
  api_patch "$kc" "/apis/lvs.lvs-operator.io/v1alpha1/lvsnodes/$node/status" \
    "{\"status\":{\"lastSyncTime\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"programmedCount\":$ok,\"errorCount\":$errs,\"services\":$services,\"vips\":$vips}}" >/dev/null
}

scenario operator t_operator
t_operator() {
  local bin=${LVS_OPERATOR_BIN:-$LVS_REPO/target/debug/lvs-operator}
  if [[ ! -x $bin ]]; then
    fail operator/binary "$bin is missing (run: make build)"
    return 0
  fi
  if ! "$bin" --help | grep -q -- '--leader-elect'; then
    fail operator/binary "$bin --help does not list --leader-elect: not the operator this scenario expects"
    return 0
  fi
  trap 'stop_proc operator-a; stop_proc operator-b' EXIT
  trap 'exit 143' TERM INT
  ensure_release
  kubectl delete lease lvs-operator-leader -n "$lvs_ns" --ignore-not-found

  # Two directors with InternalIPs, one other node.
  local n i=1
  for n in op-d1 op-d2 op-w1; do
    kubectl create -f - <<<"{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$n\"}}"
    kubectl patch node "$n" --subresource status --type merge \
      -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"10.0.0.$i\"}]}}"
    i=$((i + 1))
  done
  kubectl label node op-d1 op-d2 lvs.lvs-operator.io/director=true

  local okc=$LVS_LAB_DIR/operator.kubeconfig
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa operator)" "$okc"
  local port_a port_b
  port_a=$(free_port 18080)
  port_b=$(free_port $((port_a + 1)))
  op_start() { # NAME PORT
    start_proc "operator-$1" env POD_NAME="op-$1" RUST_LOG=info "$bin" --kubeconfig "$okc" \
      --namespace "$lvs_ns" --listen "127.0.0.1:$2" --log-format json >/dev/null
  }

  # --- objects as an earlier operator left them: its finalizer on a live
  # VirtualService, and on one whose deletion it holds (no operator ran)
  local legacy_fin=lvs.lvs-operator.io/cleanup
  kubectl apply -f - <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: legacy-live, namespace: default, finalizers: [$legacy_fin, example.com/keep]}
spec:
  address: 192.0.2.60
  port: 80
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: legacy}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: legacy-deleted, namespace: default, finalizers: [$legacy_fin]}
spec:
  address: 192.0.2.61
  port: 80
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: legacy}}
YAML
  kubectl delete "$op_vs" legacy-deleted -n default --wait=false

  # --- start: the first replica becomes leader --------------------------
  op_start a "$port_a"
  if retry 30 bash -c '[[ $(curl -fsS "http://127.0.0.1:$1/readyz") ]] && [[ $(kubectl get lease lvs-operator-leader -n "$2" -o jsonpath="{.spec.holderIdentity}") == op-a ]]' _ "$port_a" "$lvs_ns"; then
    pass operator/starts-as-leader
  else
    fail operator/starts-as-leader "within 30s: /readyz '$(curl -sS "http://127.0.0.1:$port_a/readyz" 2>&1 | head -c 200)', lease holder '$(op_lease_holder)', log: $(tail -n 2 "$LVS_LAB_DIR/operator-a.log" | tr '\n' ' ')"
    return 0
  fi

  # --- the upgrade: the legacy finalizer goes, other finalizers stay ------
  local bad=()
  retry 30 bash -c '! kubectl get "$1" legacy-deleted -n default >/dev/null 2>&1' _ "$op_vs" ||
    bad+=("default/legacy-deleted still exists 30s after the operator started: finalizers $(kubectl get "$op_vs" legacy-deleted -n default -o jsonpath='{.metadata.finalizers}' 2>&1)")
  op_wait 30 '.metadata.finalizers == ["example.com/keep"] and .status.observedGeneration == .metadata.generation' \
    "$op_vs" legacy-live -n default ||
    bad+=("default/legacy-live: finalizers $(jq -c .metadata.finalizers <<<"$op_last" 2>/dev/null), observedGeneration $(jq -c .status.observedGeneration <<<"$op_last" 2>/dev/null); expected [example.com/keep] and a status")
  if ((${#bad[@]})); then
    fail operator/legacy-finalizer-removed "$(printf '%s; ' "${bad[@]}")"
  else
    pass operator/legacy-finalizer-removed
  fi
  kubectl patch "$op_vs" legacy-live -n default --type merge -p '{"metadata":{"finalizers":null}}' >/dev/null 2>&1 || true
  kubectl delete "$op_vs" legacy-live -n default --ignore-not-found --wait=false

  # --- a valid VirtualService becomes Ready -----------------------------
  kubectl apply -f "$LVS_REPO/examples/nat.yaml"
  if op_wait 30 "$op_jq_defs current and is(\"Ready\"; \"True\") and .status.realServers.selected == 3 and .status.realServers.ready == 3" \
    "$op_vs" web-nat -n default; then
    local problems
    problems=$(jq -r "$op_jq_defs"' [
        (if .status.directors == ["op-d1", "op-d2"] then empty else "directors \(.status.directors), expected [op-d1, op-d2]" end),
        (if .status.endpoint | test("192.0.2.10.*8080") then empty else "endpoint \(.status.endpoint)" end),
        (if is("Conflict"; "False") then empty else "Conflict is not False" end),
        (if is("Invalid"; "False") then empty else "Invalid is not False" end),
        (if (.metadata.finalizers // []) == [] then empty else "carries finalizers \(.metadata.finalizers), expected none" end),
        (if cond("Programmed").status == "False" and cond("Programmed").reason == "Pending" then empty
          else "Programmed is \(cond("Programmed").status)/\(cond("Programmed").reason) with no LvsNode yet, expected False/Pending" end)
      ] | .[]' <<<"$op_last")
    if [[ -n $problems ]]; then
      fail operator/vs-ready "Ready with 3/3, but: $(paste -sd';' <<<"$problems")"
    else
      pass operator/vs-ready
    fi
  else
    fail operator/vs-ready "default/web-nat not Ready with 3/3 realservers within 30s: $(op_conds)"
  fi

  if op_wait 15 "$op_jq_defs (.status.selectedBy // []) == [\"default/web-nat\"] and .status.address == \"10.10.0.11\" and is(\"Ready\"; \"True\")" \
    "$op_rs" web-nat-1 -n default; then
    pass operator/realserver-status
  else
    fail operator/realserver-status "default/web-nat-1 status: $(jq -c .status <<<"$op_last" 2>/dev/null || first_line "$op_last")"
  fi

  # --- a later VirtualService on the same address/port/protocol ---------
  sleep 1 # creationTimestamp has a resolution of one second
  kubectl apply -f - <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: web-nat-dup, namespace: default}
spec:
  address: 192.0.2.10
  port: 8080
  protocol: TCP
  scheduler: wlc
  forwarding: NAT
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: web-nat}}
YAML
  if op_wait 30 "$op_jq_defs current and is(\"Conflict\"; \"True\") and is(\"Ready\"; \"False\") and cond(\"Ready\").reason == \"Conflict\" and is(\"Programmed\"; \"False\")" \
    "$op_vs" web-nat-dup -n default; then
    local msg
    msg=$(jq -r "$op_jq_defs cond(\"Conflict\").message" <<<"$op_last")
    sleep 1
    if ! op_wait 5 "$op_jq_defs is(\"Ready\"; \"True\") and is(\"Conflict\"; \"False\")" "$op_vs" web-nat -n default; then
      fail operator/conflict "the older default/web-nat lost its standing: $(op_conds)"
    elif [[ $msg != *default/web-nat* ]]; then
      fail operator/conflict "Conflict message does not name the winner default/web-nat: $msg"
    else
      pass operator/conflict
    fi
  else
    fail operator/conflict "default/web-nat-dup not Conflict=True/Ready=False within 30s: $(op_conds)"
  fi

  # --- an edit bumps observedGeneration ---------------------------------
  kubectl patch "$op_vs" web-nat -n default --type merge -p '{"spec":{"scheduler":"wlc"}}'
  local gen
  gen=$(kubectl get "$op_vs" web-nat -n default -o jsonpath='{.metadata.generation}')
  if ((gen < 2)); then
    fail operator/observed-generation "spec edit left metadata.generation at $gen"
  elif op_wait 20 "$op_jq_defs .status.observedGeneration == $gen and ([.status.conditions[].observedGeneration] | all(. == $gen))" \
    "$op_vs" web-nat -n default; then
    pass operator/observed-generation
  else
    fail operator/observed-generation "generation $gen not observed within 20s: $(op_conds)"
  fi

  # --- agents' LvsNode reports turn into Programmed ---------------------
  local kc1=$LVS_LAB_DIR/agent-op-d1.kubeconfig kc2=$LVS_LAB_DIR/agent-op-d2.kubeconfig
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node op-d1 "$lvs_ns" "$(lvs_sa agent)" "$kc1"
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node op-d2 "$lvs_ns" "$(lvs_sa agent)" "$kc2"
  local svc_ok svc_err
  svc_ok="[{\"name\":\"default/web-nat\",\"generation\":$gen,\"roles\":[\"director\"]}]"
  svc_err="[{\"name\":\"default/web-nat\",\"generation\":$gen,\"roles\":[\"director\"],\"error\":\"scheduler wlc: module ip_vs_wlc not loaded\"}]"
  op_report op-d1 "$kc1" "$svc_ok"
  if op_wait 20 "$op_jq_defs cond(\"Programmed\").reason == \"Pending\" and (cond(\"Programmed\").message | test(\"op-d2\")) and .status.nodes == {\"op-d1\": \"Programmed\", \"op-d2\": \"Pending\"}" \
    "$op_vs" web-nat -n default; then
    pass operator/programmed-partial
  else
    fail operator/programmed-partial "after op-d1 alone reported: $(op_conds) nodes=$(jq -c .status.nodes <<<"$op_last" 2>/dev/null)"
  fi
  op_report op-d2 "$kc2" "$svc_err"
  if op_wait 20 "$op_jq_defs is(\"Programmed\"; \"False\") and cond(\"Programmed\").reason == \"Failed\" and (cond(\"Programmed\").message | test(\"ip_vs_wlc\")) and .status.nodes[\"op-d2\"] == \"Failed\"" \
    "$op_vs" web-nat -n default; then
    pass operator/programmed-failed
  else
    fail operator/programmed-failed "after op-d2 reported an error: $(op_conds) nodes=$(jq -c .status.nodes <<<"$op_last" 2>/dev/null)"
  fi
  op_report op-d2 "$kc2" "$svc_ok"
  if op_wait 20 "$op_jq_defs is(\"Programmed\"; \"True\") and .status.nodes == {\"op-d1\": \"Programmed\", \"op-d2\": \"Programmed\"}" \
    "$op_vs" web-nat -n default; then
    pass operator/programmed
  else
    fail operator/programmed "after both directors reported generation $gen: $(op_conds) nodes=$(jq -c .status.nodes <<<"$op_last" 2>/dev/null)"
  fi

  # --- director HA roles from the LvsNode reports ------------------------
  op_vip() { echo "[{\"address\":\"192.0.2.10\",\"role\":\"$1\",\"since\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}]"; }
  op_report op-d1 "$kc1" "$svc_ok" "$(op_vip Active)"
  op_report op-d2 "$kc2" "$svc_ok" "$(op_vip Standby)"
  if op_wait 20 '.status.activeDirector == "op-d1" and .status.directorRoles == {"op-d1": "Active", "op-d2": "Standby"}' \
    "$op_vs" web-nat -n default; then
    pass operator/ha-roles
  else
    fail operator/ha-roles "after op-d1 reported Active, op-d2 Standby: activeDirector=$(jq -c .status.activeDirector <<<"$op_last" 2>/dev/null) directorRoles=$(jq -c .status.directorRoles <<<"$op_last" 2>/dev/null)"
  fi
  # As a takeover goes: the new active reports before the old one.
  op_report op-d2 "$kc2" "$svc_ok" "$(op_vip Active)"
  op_report op-d1 "$kc1" "$svc_ok" "$(op_vip Standby)"
  local active_col
  if op_wait 20 '.status.activeDirector == "op-d2" and .status.directorRoles == {"op-d1": "Standby", "op-d2": "Active"}' \
    "$op_vs" web-nat -n default; then
    # By the header's position: columns before it may be empty (HEALTHY
    # without a director's counts).
    active_col=$(kubectl get "$op_vs" web-nat -n default | awk 'NR == 1 { c = index($0, "ACTIVE") } NR == 2 && c { split(substr($0, c), a, " "); print a[1] }')
    if [[ $active_col == op-d2 ]]; then
      pass operator/ha-takeover
    else
      fail operator/ha-takeover "kubectl get shows ACTIVE '$active_col', expected op-d2: $(kubectl get "$op_vs" web-nat -n default 2>&1 | head -n 2 | tr '\n' '|')"
    fi
  else
    fail operator/ha-takeover "after op-d2 reported Active: activeDirector=$(jq -c .status.activeDirector <<<"$op_last" 2>/dev/null) directorRoles=$(jq -c .status.directorRoles <<<"$op_last" 2>/dev/null)"
  fi
  local ha_events
  if retry 20 bash -c 'kubectl get events.events.k8s.io -n default -o json | jq -e "
      any(.items[]; .regarding.name == \"web-nat\" and .reason == \"DirectorTakeover\" and .related.name == \"op-d2\" and .note == \"node op-d2 is now the active director for VIP 192.0.2.10 (was op-d1)\") and
      any(.items[]; .regarding.name == \"web-nat\" and .reason == \"DirectorReleased\" and .related.name == \"op-d1\" and .note == \"node op-d1 is no longer the active director for VIP 192.0.2.10 (now Standby)\")" >/dev/null'; then
    pass operator/ha-events
  else
    ha_events=$(kubectl get events.events.k8s.io -n default -o json | jq -c '[.items[] | select(.reason | startswith("Director")) | "\(.reason) (\(.related.name)): \(.note)"]')
    fail operator/ha-events "no DirectorTakeover of op-d2 (was op-d1) and DirectorReleased of op-d1 on web-nat within 20s; Director Events: $ha_events"
  fi
  # HA off again: the reports carry no roles, the status none.
  op_report op-d1 "$kc1" "$svc_ok"
  op_report op-d2 "$kc2" "$svc_ok"
  if op_wait 20 '(.status | has("activeDirector") or has("directorRoles")) | not' "$op_vs" web-nat -n default; then
    pass operator/ha-roles-cleared
  else
    fail operator/ha-roles-cleared "status keeps activeDirector=$(jq -c .status.activeDirector <<<"$op_last" 2>/dev/null) directorRoles=$(jq -c .status.directorRoles <<<"$op_last" 2>/dev/null) after the roles left the reports"
  fi

  # --- deleting a VirtualService completes (no finalizer holds it) -------
  local fin
  fin=$(kubectl get "$op_vs" web-nat-dup -n default -o jsonpath='{.metadata.finalizers}' 2>/dev/null || true)
  kubectl delete "$op_vs" web-nat-dup -n default --wait=false
  if [[ -n $fin ]]; then
    fail operator/delete "web-nat-dup carried finalizers before deletion: '$fin', expected none"
  elif retry 20 bash -c '! kubectl get "$1" web-nat-dup -n default >/dev/null 2>&1' _ "$op_vs"; then
    pass operator/delete
  else
    fail operator/delete "default/web-nat-dup still exists 20s after delete: finalizers $(kubectl get "$op_vs" web-nat-dup -n default -o jsonpath='{.metadata.finalizers}' 2>&1)"
  fi

  # --- Events -----------------------------------------------------------
  local events want missing=() r
  events=$(kubectl get events.events.k8s.io -n default -o json)
  jq -r '.items[] | select(.regarding.kind == "VirtualService") | "\(.regarding.name) \(.type) \(.reason) by \(.reportingController)/\(.reportingInstance): \(.note)"' <<<"$events"
  for want in "web-nat Normal Accepted" "web-nat Normal Ready" "web-nat Normal Programmed" \
    "web-nat Warning ProgrammingFailed" "web-nat-dup Warning Conflict"; do
    read -r n t r <<<"$want"
    # The transitions of one status write come as one Event, whose note
    # names each reason ("Accepted: ...; Ready: ...").
    jq -e --arg n "$n" --arg t "$t" --arg r "$r" \
      'any(.items[]; .regarding.kind == "VirtualService" and .regarding.name == $n and (.reportingController // "") != ""
        and ((.type == $t and .reason == $r) or ((.note // "") | split("; ") | any(startswith($r + ": ")))))' \
      <<<"$events" >/dev/null || missing+=("$n/$t/$r")
  done
  if ((${#missing[@]})); then
    fail operator/events "missing Events (object/type/reason): ${missing[*]}"
  else
    pass operator/events
  fi

  # --- two replicas: killing the leader hands over -----------------------
  op_start b "$port_b"
  if ! retry 30 curl -fsS "http://127.0.0.1:$port_b/healthz" >/dev/null; then
    fail operator/leader-handover "the second replica (op-b) did not serve /healthz within 30s: $(tail -n 2 "$LVS_LAB_DIR/operator-b.log" | tr '\n' ' ')"
    return 0
  fi
  sleep 3
  local holder transitions duration
  holder=$(op_lease_holder)
  transitions=$(kubectl get lease lvs-operator-leader -n "$lvs_ns" -o jsonpath='{.spec.leaseTransitions}')
  duration=$(kubectl get lease lvs-operator-leader -n "$lvs_ns" -o jsonpath='{.spec.leaseDurationSeconds}')
  if [[ $holder != op-a ]]; then
    fail operator/leader-handover "with op-b started, the lease holder is '$holder', expected op-a to keep it"
    return 0
  fi
  # While op-a leads, an edit is written by op-a alone; op-b only follows.
  kubectl patch "$op_vs" web-nat -n default --type merge -p '{"spec":{"scheduler":"lc"}}'
  gen=$(kubectl get "$op_vs" web-nat -n default -o jsonpath='{.metadata.generation}')
  if ! op_wait 20 "$op_jq_defs .status.observedGeneration == $gen" "$op_vs" web-nat -n default; then
    fail operator/follower-writes-nothing "generation $gen not observed within 20s with two replicas: $(op_conds)"
  elif grep -q '"status written"' "$LVS_LAB_DIR/operator-b.log"; then
    fail operator/follower-writes-nothing "op-b wrote status while op-a held the lease: $(grep -m1 '"status written"' "$LVS_LAB_DIR/operator-b.log")"
  elif ! grep -q "\"status written\".*web-nat" "$LVS_LAB_DIR/operator-a.log"; then
    fail operator/follower-writes-nothing "generation $gen was observed but op-a's log shows no status write for web-nat"
  else
    pass operator/follower-writes-nothing
  fi

  stop_proc operator-a KILL
  local t0=$SECONDS limit=$((duration + 5))
  if retry "$limit" bash -c '[[ $(kubectl get lease lvs-operator-leader -n "$1" -o jsonpath="{.spec.holderIdentity}") == op-b ]]' _ "$lvs_ns"; then
    local took=$((SECONDS - t0)) tr2
    tr2=$(kubectl get lease lvs-operator-leader -n "$lvs_ns" -o jsonpath='{.spec.leaseTransitions}')
    echo "handover after SIGKILL of op-a took ${took}s (leaseDurationSeconds $duration)"
    if ((tr2 <= ${transitions:-0})); then
      fail operator/leader-handover "holder is op-b but leaseTransitions stayed at $tr2"
    else
      pass operator/leader-handover
    fi
  else
    fail operator/leader-handover "lease holder still '$(op_lease_holder)' ${limit}s after SIGKILL of op-a (leaseDurationSeconds $duration)"
    return 0
  fi

  # The new leader writes status.
  kubectl patch "$op_vs" web-nat -n default --type merge -p '{"spec":{"scheduler":"rr"}}'
  gen=$(kubectl get "$op_vs" web-nat -n default -o jsonpath='{.metadata.generation}')
  if op_wait 20 "$op_jq_defs .status.observedGeneration == $gen" "$op_vs" web-nat -n default; then
    pass operator/new-leader-writes-status
  else
    fail operator/new-leader-writes-status "generation $gen not observed within 20s of the edit: $(op_conds)"
  fi

  # A deletion under the new leader completes too.
  kubectl delete "$op_vs" web-nat -n default --wait=false
  if retry 20 bash -c '! kubectl get "$1" web-nat -n default >/dev/null 2>&1' _ "$op_vs"; then
    pass operator/new-leader-delete
  else
    fail operator/new-leader-delete "default/web-nat still exists 20s after delete"
  fi

  # SIGTERM: a clean exit (status 0) that releases the lease, so a successor
  # need not wait for it to expire.
  local pid_b rc=0
  pid_b=$(cat "$LVS_LAB_DIR/procs/operator-b.pid")
  kill -TERM "$pid_b"
  if retry 10 bash -c '! kill -0 "$1" 2>/dev/null' _ "$pid_b"; then
    wait "$pid_b" || rc=$?
    holder=$(op_lease_holder)
    if ((rc != 0)); then
      fail operator/graceful-release "op-b exited with status $rc on SIGTERM: $(tail -n 1 "$LVS_LAB_DIR/operator-b.log")"
    elif [[ -n $holder ]]; then
      fail operator/graceful-release "op-b exited on SIGTERM but the lease still names '$holder'"
    else
      pass operator/graceful-release
    fi
  else
    fail operator/graceful-release "op-b still running 10s after SIGTERM"
  fi
  stop_proc operator-b

  kubectl delete -f "$LVS_REPO/examples/nat.yaml" --ignore-not-found --wait=false
  kubectl delete "$op_ln" op-d1 op-d2 --ignore-not-found
  kubectl delete node op-d1 op-d2 op-w1 --ignore-not-found
}
