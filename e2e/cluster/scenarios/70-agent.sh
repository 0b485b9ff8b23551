# The node agent in Kubernetes mode (target/debug/node-agent) as processes on
# the host, one per Node object, each with a Node-bound token of the chart's
# agent ServiceAccount (so the chart's RBAC and own-node admission policy are
# what it works under), next to the operator under its own ServiceAccount.
# This host has no IPVS, so the agents program the in-memory dataplane
# (--dataplane fake); what is real is everything between them and the API
# server: watches, snapshots, LvsNode reports, the operator's aggregation.
#
#   LVS_AGENT_BIN     the agent (default <repo>/target/debug/node-agent)
#   LVS_OPERATOR_BIN  the operator (default <repo>/target/debug/lvs-operator)

ag_vs=virtualservices.lvs.lvs-operator.io
ag_rs=realservers.lvs.lvs-operator.io
ag_ln=lvsnodes.lvs.lvs-operator.io
# Node name -> InternalIP. rs1 and rs2 are the nodeNames examples/dr.yaml uses.
ag_nodes=(ag-d1 ag-d2 rs1 rs2)
declare -A ag_ip=([ag-d1]=10.0.1.1 [ag-d2]=10.0.1.2 [rs1]=10.0.1.11 [rs2]=10.0.1.12)
declare -A ag_port=()

# ag_wait SECONDS JQ KUBECTL-GET-ARGS... -> poll `kubectl get -o json ARGS`
# until JQ (jq -e) holds; the last JSON seen stays in $ag_last.
ag_wait() {
  local timeout=$1 expr=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    ag_last=$(kubectl get -o json "$@" 2>&1) || true
    jq -e "$expr" <<<"$ag_last" >/dev/null 2>&1 && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

ag_jq_defs='def cond($t): [.status.conditions[]? | select(.type == $t)][0];
  def is($t; $s): cond($t).status == $s;'

# The live state of a director's entries (kernel counters, their time, the
# table hash) changes with traffic and time, not with what is programmed:
# comparisons of reports leave it out.
ag_programmed='map(del(.counters, .countersTime, .tableHash))'
# ag_services NODE -> the LvsNode's status.services without live state, compact JSON.
ag_services() {
  kubectl get "$ag_ln" "$1" -o json 2>/dev/null | jq -c ".status.services // [] | $ag_programmed" 2>/dev/null || echo '(no LvsNode)'
}

# ag_vs_state NAME -> "Programmed=S/R gen=G observed=O nodes={...}" for messages.
ag_vs_state() {
  kubectl get "$ag_vs" "$1" -n default -o json 2>/dev/null | jq -r "$ag_jq_defs"'
    "Programmed=\(cond("Programmed").status)/\(cond("Programmed").reason) (\(cond("Programmed").message)) generation=\(.metadata.generation) observed=\(.status.observedGeneration) nodes=\(.status.nodes | tojson)"' 2>/dev/null || echo "(no $1)"
}

# ag_profile NODE -> the LvsNodeProfile the agent follows, from its /status
# (compact JSON; {} for none).
ag_profile() {
  curl -fsS "http://127.0.0.1:${ag_port[$1]}/status" 2>/dev/null | jq -c '.profile // {}' 2>/dev/null
}
ag_profile_is() { [[ $(ag_profile "$1") == "$2" ]]; }

# ag_metric NODE NAME-WITH-LABELS -> the value on the agent's /metrics (0 if absent).
ag_metric() {
  curl -fsS "http://127.0.0.1:${ag_port[$1]}/metrics" 2>/dev/null |
    awk -v m="$2" '$1 == m { print $2; found = 1 } END { if (!found) print 0 }'
}

# ag_metric_gt NODE NAME-WITH-LABELS VALUE -> whether the metric exceeds VALUE.
ag_metric_gt() {
  (($(ag_metric "$1" "$2") > $3))
}

# ag_start NODE [PROC TOKEN-NODE] -> start an agent for NODE as process PROC
# (default agent-NODE) with a token bound to TOKEN-NODE (default NODE):
# Kubernetes mode, fake dataplane, a 2 s resync so quiet periods see several
# syncs, and an unchanged report never rewritten just for its lastSyncTime
# (so a rewrite means the content changed).
ag_start() {
  local node=$1 proc=${2:-agent-$1} token_node=${3:-$1}
  start_proc "$proc" env RUST_LOG=info "$ag_bin" --kubeconfig "$LVS_LAB_DIR/agent-$token_node.kubeconfig" \
    --node-name "$node" --dataplane fake --node-ip "${ag_ip[$node]}" \
    --listen "127.0.0.1:${ag_port[$proc]}" --resync-interval 2 --report-refresh-interval 3600 \
    --ha --ha-namespace "$lvs_ns" --log-format json >/dev/null
}

scenario agent t_agent
t_agent() {
  ag_bin=${LVS_AGENT_BIN:-$LVS_REPO/target/debug/node-agent}
  local op_bin=${LVS_OPERATOR_BIN:-$LVS_REPO/target/debug/lvs-operator}
  if [[ ! -x $ag_bin ]] || ! "$ag_bin" --help | grep -q -- '--dataplane'; then
    fail agent/binary "$ag_bin is missing or its --help lists no --dataplane (run: cargo build -p lvs-node-agent)"
    return 0
  fi
  if [[ ! -x $op_bin ]] || ! "$op_bin" --help | grep -q -- '--leader-elect'; then
    fail agent/binary "$op_bin is missing or not the operator (run: cargo build -p lvs-operator)"
    return 0
  fi
  pass agent/binary
  trap 'stop_proc operator; stop_proc agent-imposter; stop_proc agent-chart; for n in "${ag_nodes[@]}"; do stop_proc "agent-$n"; done' EXIT
  trap 'exit 143' TERM INT
  ensure_release
  kubectl delete lease lvs-operator-leader -n "$lvs_ns" --ignore-not-found

  # Directors of the examples are the Nodes labelled director=true: only ours.
  local stray=()
  mapfile -t stray < <(kubectl get nodes -l lvs.lvs-operator.io/director=true -o name | grep -v -E '^node/ag-d[12]$' || true)
  if ((${#stray[@]})); then
    echo "removing the director label from nodes left by other scenarios: ${stray[*]}"
    kubectl label "${stray[@]}" lvs.lvs-operator.io/director-
  fi
  local n
  for n in "${ag_nodes[@]}"; do
    kubectl create -f - <<<"{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$n\"}}"
    kubectl patch node "$n" --subresource status --type merge \
      -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"${ag_ip[$n]}\"}]}}"
    "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node "$n" "$lvs_ns" "$(lvs_sa agent)" "$LVS_LAB_DIR/agent-$n.kubeconfig"
  done
  kubectl label node ag-d1 ag-d2 lvs.lvs-operator.io/director=true

  local okc=$LVS_LAB_DIR/operator-70.kubeconfig op_port
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa operator)" "$okc"
  op_port=$(free_port 18180)
  start_proc operator env POD_NAME=op-70 RUST_LOG=info "$op_bin" --kubeconfig "$okc" \
    --namespace "$lvs_ns" --listen "127.0.0.1:$op_port" --log-format json >/dev/null

  # --- every agent starts, syncs the (empty) cluster and creates its LvsNode
  local p=19477
  for n in "${ag_nodes[@]}" imposter; do
    p=$(free_port "$p")
    ag_port[agent-$n]=$p ag_port[$n]=$p
    p=$((p + 1))
  done
  for n in "${ag_nodes[@]}"; do ag_start "$n"; done
  local missing=()
  for n in "${ag_nodes[@]}"; do
    if ! retry 30 curl -fsS "http://127.0.0.1:${ag_port[$n]}/readyz" >/dev/null 2>&1; then
      missing+=("$n: /readyz not 200 within 30s, log: $(tail -n 2 "$LVS_LAB_DIR/agent-$n.log" | tr '\n' ' ')")
    elif ! ag_wait 20 ".spec.nodeName == \"$n\" and (.status.lastSyncTime // \"\") != \"\" and .status.programmedCount == 0" "$ag_ln" "$n"; then
      missing+=("$n: LvsNode $(jq -c '{spec, status}' <<<"$ag_last" 2>/dev/null || first_line "$ag_last")")
    fi
  done
  if ((${#missing[@]})); then
    fail agent/starts "$(printf '%s; ' "${missing[@]}")"
    return 0
  fi
  pass agent/starts
  # --- the chart's own DaemonSet args start the Kubernetes mode -----------
  # As the kubelet would run them (NODE_NAME expanded), with the in-cluster
  # config replaced by KUBECONFIG, the fake dataplane chosen through its
  # environment variable (this host has no IPVS), and --listen moved to a
  # free loopback port.
  local ds_json chart_args=() chart_cmd
  kubectl create -f - <<<'{"apiVersion":"v1","kind":"Node","metadata":{"name":"ag-chart"}}'
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node ag-chart "$lvs_ns" "$(lvs_sa agent)" "$LVS_LAB_DIR/agent-ag-chart.kubeconfig"
  ds_json=$(kubectl get daemonset -n "$lvs_ns" -l app.kubernetes.io/component=agent -o json)
  chart_cmd=$(jq -r '.items[0].spec.template.spec.containers[0].command | join(" ")' <<<"$ds_json")
  mapfile -t chart_args < <(jq -r '.items[0].spec.template.spec.containers[0].args[]' <<<"$ds_json" |
    sed -e 's/\$(NODE_NAME)/ag-chart/' -e "s/^--listen=.*/--listen=127.0.0.1:${ag_port[imposter]}/")
  echo "chart: $chart_cmd ${chart_args[*]}"
  if [[ $chart_cmd != */node-agent ]] || ! printf '%s\n' "${chart_args[@]}" | grep -q -- '^--proc-sys=/host/proc/sys$' ||
    printf '%s\n' "${chart_args[@]}" | grep -q -- '^--config-dir'; then
    fail agent/chart-args "the DaemonSet runs '$chart_cmd ${chart_args[*]}': expected .../node-agent with --proc-sys=/host/proc/sys and no --config-dir"
  else
    start_proc agent-chart env KUBECONFIG="$LVS_LAB_DIR/agent-ag-chart.kubeconfig" LVS_DATAPLANE=fake \
      "$ag_bin" "${chart_args[@]}" >/dev/null
    if ag_wait 30 '.spec.nodeName == "ag-chart" and (.status.lastSyncTime // "") != ""' "$ag_ln" ag-chart &&
      grep -q 'node-agent started (Kubernetes mode)' "$LVS_LAB_DIR/agent-chart.log"; then
      pass agent/chart-args
    else
      fail agent/chart-args "the agent with the chart's args wrote no LvsNode ag-chart within 30s: $(grep -m1 -E '"(WARN|ERROR)"' "$LVS_LAB_DIR/agent-chart.log" || tail -n 1 "$LVS_LAB_DIR/agent-chart.log")"
    fi
  fi
  stop_proc agent-chart
  kubectl delete "$ag_ln" ag-chart --ignore-not-found
  kubectl delete node ag-chart --ignore-not-found

  if [[ $(ag_metric ag-d1 lvs_agent_api_synced) == 1 ]]; then
    pass agent/api-synced-metric
  else
    fail agent/api-synced-metric "ag-d1 /metrics lvs_agent_api_synced is '$(ag_metric ag-d1 lvs_agent_api_synced)', expected 1"
  fi

  # --- an LvsNodeProfile reaches the agents it selects (watch, chart RBAC)
  kubectl apply -f - <<<'{"apiVersion":"lvs.lvs-operator.io/v1alpha1","kind":"LvsNodeProfile","metadata":{"name":"ag-directors"},"spec":{"nodeSelector":{"matchLabels":{"lvs.lvs-operator.io/director":"true"}},"ipvsTimeouts":{"udpSeconds":7},"directorSysctls":{"sloppyTcp":true}}}'
  local want_prof='{"state":"applied","name":"ag-directors","settings":{"ipvs/timeout/udp":"7","net/ipv4/vs/sloppy_tcp":"1"}}'
  if ! retry 30 ag_profile_is ag-d1 "$want_prof"; then
    fail agent/node-profile "ag-d1 /status profile is $(ag_profile ag-d1), expected $want_prof"
  elif ! ag_profile_is rs1 '{}'; then
    fail agent/node-profile "rs1 (not a director) follows a profile: $(ag_profile rs1)"
  else
    kubectl delete lvsnodeprofiles.lvs.lvs-operator.io ag-directors
    if retry 30 ag_profile_is ag-d1 '{}'; then
      pass agent/node-profile
    else
      fail agent/node-profile "ag-d1 still follows a profile after its deletion: $(ag_profile ag-d1)"
    fi
  fi

  # --- the examples: each node reports its roles, the operator aggregates
  kubectl apply -f "$LVS_REPO/examples/nat.yaml" -f "$LVS_REPO/examples/dr.yaml"
  local g_nat g_dr
  g_nat=$(kubectl get "$ag_vs" web-nat -n default -o jsonpath='{.metadata.generation}')
  g_dr=$(kubectl get "$ag_vs" web-dr -n default -o jsonpath='{.metadata.generation}')
  local want_d want_rs bad=()
  # A director also counts its healthy destinations (web-dr: rs1, rs2; web-nat: three).
  want_d="[{\"name\":\"default/web-dr\",\"generation\":$g_dr,\"roles\":[\"director\"],\"healthy\":2,\"total\":2},{\"name\":\"default/web-nat\",\"generation\":$g_nat,\"roles\":[\"director\"],\"healthy\":3,\"total\":3}]"
  want_rs="[{\"name\":\"default/web-dr\",\"generation\":$g_dr,\"roles\":[\"dr-realserver\"]}]"
  for n in ag-d1 ag-d2; do
    ag_wait 30 "(.status.services | $ag_programmed) == $want_d and .status.programmedCount == 2 and .status.errorCount == 0" "$ag_ln" "$n" ||
      bad+=("$n reports $(ag_services "$n"), expected $want_d")
  done
  for n in rs1 rs2; do
    ag_wait 30 "(.status.services | $ag_programmed) == $want_rs and .status.programmedCount == 1" "$ag_ln" "$n" ||
      bad+=("$n reports $(ag_services "$n"), expected $want_rs")
  done
  if ((${#bad[@]})); then
    fail agent/reports "$(printf '%s; ' "${bad[@]}")"
  else
    pass agent/reports
  fi

  if ag_wait 30 "$ag_jq_defs is(\"Programmed\"; \"True\") and .status.observedGeneration == $g_nat and .status.nodes == {\"ag-d1\": \"Programmed\", \"ag-d2\": \"Programmed\"}" \
    "$ag_vs" web-nat -n default; then
    pass agent/programmed-nat
  else
    fail agent/programmed-nat "web-nat: $(ag_vs_state web-nat)"
  fi
  if ag_wait 30 "$ag_jq_defs is(\"Programmed\"; \"True\") and .status.observedGeneration == $g_dr and .status.nodes == {\"ag-d1\": \"Programmed\", \"ag-d2\": \"Programmed\", \"rs1\": \"Programmed\", \"rs2\": \"Programmed\"}" \
    "$ag_vs" web-dr -n default; then
    pass agent/programmed-dr
  else
    fail agent/programmed-dr "web-dr: $(ag_vs_state web-dr)"
  fi

  # --- the LvsNode is the agent's, written by server-side apply; the
  # agent writes no VirtualService or RealServer
  local managers
  managers=$(kubectl get "$ag_ln" rs1 -o json --show-managed-fields |
    jq -r '[.metadata.managedFields[] | "\(.manager)/\(.operation)/\(.subresource // "-")"] | sort | join(" ")')
  if [[ $managers == "lvs-node-agent/Apply/- lvs-node-agent/Apply/status" ]]; then
    pass agent/field-manager
  else
    fail agent/field-manager "LvsNode rs1 managedFields: '$managers', expected lvs-node-agent/Apply for the object and its status only"
  fi
  managers=$(kubectl get "$ag_vs" -n default -o json --show-managed-fields | jq -r '[.items[].metadata.managedFields[].manager] | unique | join(" ")')
  managers+=" $(kubectl get "$ag_rs" -n default -o json --show-managed-fields | jq -r '[.items[].metadata.managedFields[].manager] | unique | join(" ")')"
  if [[ $managers == *lvs-node-agent* ]]; then
    fail agent/no-spec-writes "a VirtualService or RealServer has a field manager lvs-node-agent: $managers"
  else
    pass agent/no-spec-writes
  fi

  # --- quiet while nothing changes: syncs run, the LvsNode is not rewritten
  local rv0 syncs0 rv1 syncs1
  rv0=$(kubectl get "$ag_ln" rs1 -o jsonpath='{.metadata.resourceVersion}')
  syncs0=$(ag_metric rs1 'lvs_agent_syncs_total{mode="full"}')
  sleep 8
  rv1=$(kubectl get "$ag_ln" rs1 -o jsonpath='{.metadata.resourceVersion}')
  syncs1=$(ag_metric rs1 'lvs_agent_syncs_total{mode="full"}')
  if ((syncs1 - syncs0 < 3)); then
    fail agent/quiet-when-unchanged "rs1 ran $((syncs1 - syncs0)) full syncs in 8s with --resync-interval 2, expected at least 3"
  elif [[ $rv0 != "$rv1" ]]; then
    fail agent/quiet-when-unchanged "LvsNode rs1 was rewritten ($rv0 -> $rv1) though nothing changed within 8s"
  else
    pass agent/quiet-when-unchanged
  fi

  # --- an edit: Programmed follows the new generation ---------------------
  kubectl patch "$ag_vs" web-nat -n default --type merge -p '{"spec":{"scheduler":"wlc"}}'
  local g_nat2
  g_nat2=$(kubectl get "$ag_vs" web-nat -n default -o jsonpath='{.metadata.generation}')
  if ((g_nat2 <= g_nat)); then
    fail agent/edit-generation "the scheduler edit left web-nat at generation $g_nat2"
  elif ag_wait 30 "$ag_jq_defs is(\"Programmed\"; \"True\") and .status.observedGeneration == $g_nat2 and cond(\"Programmed\").observedGeneration == $g_nat2 and (cond(\"Programmed\").message | test(\"generation $g_nat2 \"))" \
    "$ag_vs" web-nat -n default; then
    bad=()
    for n in ag-d1 ag-d2; do
      [[ $(ag_services "$n" | jq '.[] | select(.name == "default/web-nat") | .generation') == "$g_nat2" ]] ||
        bad+=("$n reports $(ag_services "$n")")
    done
    if ((${#bad[@]})); then
      fail agent/edit-generation "Programmed=True at $g_nat2 but: ${bad[*]}"
    else
      pass agent/edit-generation
    fi
  else
    fail agent/edit-generation "web-nat after the edit to generation $g_nat2: $(ag_vs_state web-nat)"
  fi
  local su
  su=$(ag_metric ag-d1 'lvs_agent_ops_total{kind="service_update"}')
  if ((su >= 1)); then
    pass agent/edit-in-place
  else
    fail agent/edit-in-place "ag-d1 counts $su service_update ops after the scheduler edit"
  fi

  # A RealServer edit (weight) reaches the directors' destinations; the
  # VirtualService generation stays.
  local du0 du1
  du0=$(ag_metric ag-d1 'lvs_agent_ops_total{kind="dest_update"}')
  kubectl patch "$ag_rs" web-dr-rs2 -n default --type merge -p '{"spec":{"weight":5}}'
  if retry 20 ag_metric_gt ag-d1 'lvs_agent_ops_total{kind="dest_update"}' "$du0"; then
    pass agent/realserver-edit
  else
    du1=$(ag_metric ag-d1 'lvs_agent_ops_total{kind="dest_update"}')
    fail agent/realserver-edit "ag-d1 dest_update ops stayed at $du1 (was $du0) 20s after the weight edit"
  fi

  # --- an agent cannot write another node's LvsNode ----------------------
  # Token bound to rs1, told it is ag-d2: the admission policy refuses.
  ag_start ag-d2 agent-imposter rs1
  if retry 30 grep -q 'writing the LvsNode failed.*may only write the LvsNode and LvsSnapshot status named after its own node' "$LVS_LAB_DIR/agent-imposter.log"; then
    local ok_writes
    ok_writes=$(ag_metric agent-imposter 'lvs_agent_report_writes_total{result="ok"}')
    if [[ $ok_writes == 0 ]]; then
      pass agent/own-node-only
    else
      fail agent/own-node-only "denied once, but the imposter counts $ok_writes successful LvsNode writes"
    fi
  else
    fail agent/own-node-only "an agent with rs1's token running as ag-d2 logged no denied LvsNode write within 30s: $(grep -m1 -i 'lvsnode' "$LVS_LAB_DIR/agent-imposter.log" || tail -n 1 "$LVS_LAB_DIR/agent-imposter.log")"
  fi
  stop_proc agent-imposter

  # --- restart: the same state is reported again ------------------------
  local before after t_before
  before=$(ag_services ag-d1)
  t_before=$(kubectl get "$ag_ln" ag-d1 -o jsonpath='{.status.lastSyncTime}')
  stop_proc agent-ag-d1 KILL
  sleep 1.2 # lastSyncTime has a resolution of one second
  ag_start ag-d1
  if ag_wait 30 "(.status.lastSyncTime // \"\") > \"$t_before\"" "$ag_ln" ag-d1; then
    after=$(jq -c ".status.services // [] | $ag_programmed" <<<"$ag_last")
    if [[ $after == "$before" ]]; then
      pass agent/restart-same-report
    else
      fail agent/restart-same-report "ag-d1 reported $before before SIGKILL and $after after the restart"
    fi
  else
    fail agent/restart-same-report "ag-d1 wrote no LvsNode within 30s of its restart (lastSyncTime $(kubectl get "$ag_ln" ag-d1 -o jsonpath='{.status.lastSyncTime}'), was $t_before): $(tail -n 2 "$LVS_LAB_DIR/agent-ag-d1.log" | tr '\n' ' ')"
  fi
  if ag_wait 20 "$ag_jq_defs is(\"Programmed\"; \"True\")" "$ag_vs" web-nat -n default; then
    pass agent/restart-programmed
  else
    fail agent/restart-programmed "web-nat after ag-d1's restart: $(ag_vs_state web-nat)"
  fi

  # --- a change while an agent is away converges when it is back --------
  local pid rc=0
  pid=$(cat "$LVS_LAB_DIR/procs/agent-rs2.pid")
  kill -TERM "$pid"
  if retry 10 bash -c '! kill -0 "$1" 2>/dev/null' _ "$pid"; then
    wait "$pid" || rc=$?
    if ((rc == 0)); then
      pass agent/sigterm
    else
      fail agent/sigterm "rs2's agent exited with status $rc on SIGTERM: $(tail -n 1 "$LVS_LAB_DIR/agent-rs2.log")"
    fi
  else
    fail agent/sigterm "rs2's agent still running 10s after SIGTERM"
  fi
  stop_proc agent-rs2
  kubectl patch "$ag_vs" web-dr -n default --type merge -p '{"spec":{"scheduler":"wlc"}}'
  local g_dr2
  g_dr2=$(kubectl get "$ag_vs" web-dr -n default -o jsonpath='{.metadata.generation}')
  if ag_wait 30 "$ag_jq_defs cond(\"Programmed\").reason == \"Pending\" and .status.observedGeneration == $g_dr2 and .status.nodes.rs2 == \"Pending\" and .status.nodes.rs1 == \"Programmed\" and .status.nodes[\"ag-d1\"] == \"Programmed\"" \
    "$ag_vs" web-dr -n default; then
    pass agent/away-pending
  else
    fail agent/away-pending "web-dr at generation $g_dr2 with rs2's agent stopped: $(ag_vs_state web-dr)"
  fi
  ag_start rs2
  if ag_wait 30 "$ag_jq_defs is(\"Programmed\"; \"True\") and .status.observedGeneration == $g_dr2 and .status.nodes.rs2 == \"Programmed\"" \
    "$ag_vs" web-dr -n default &&
    [[ $(ag_services rs2 | jq '.[0].generation') == "$g_dr2" ]]; then
    pass agent/away-converges
  else
    fail agent/away-converges "web-dr after rs2's agent came back: $(ag_vs_state web-dr); rs2 reports $(ag_services rs2)"
  fi

  # --- deleting a VirtualService while no operator runs: nothing holds the
  # object, and it leaves the agents' reports at once
  stop_proc operator
  kubectl delete -f "$LVS_REPO/examples/dr.yaml" --wait=false
  bad=()
  if ! retry 10 bash -c '! kubectl get "$1" web-dr -n default >/dev/null 2>&1' _ "$ag_vs"; then
    bad+=("web-dr still exists 10s after delete with the operator stopped: finalizers $(kubectl get "$ag_vs" web-dr -n default -o jsonpath='{.metadata.finalizers}' 2>&1)")
  fi
  for n in rs1 rs2; do
    ag_wait 30 '(.status.services // []) == [] and .status.programmedCount == 0' "$ag_ln" "$n" ||
      bad+=("$n reports $(ag_services "$n")")
  done
  ag_wait 30 '[.status.services[]?.name] == ["default/web-nat"]' "$ag_ln" ag-d1 ||
    bad+=("ag-d1 reports $(ag_services ag-d1)")
  if ((${#bad[@]})); then
    fail agent/delete "$(printf '%s; ' "${bad[@]}")"
  else
    pass agent/delete
  fi

  stop_proc operator
  for n in "${ag_nodes[@]}"; do stop_proc "agent-$n"; done
  kubectl delete -f "$LVS_REPO/examples/nat.yaml" --ignore-not-found --wait=false
  kubectl delete "$ag_ln" "${ag_nodes[@]}" --ignore-not-found
  kubectl delete node "${ag_nodes[@]}" --ignore-not-found
}
