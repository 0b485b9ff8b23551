# lvsnode-report-bounded: 5,000 VirtualServices directed by one node that
# fails them all for one node-level reason (its kernel has no IPVS: the
# agent's in-memory dataplane started with --fake-no-ipvs). The node's
# LvsNode status must stay under 256 KiB and still say what is wrong (the
# reason once in status.nodeErrors, every service counted as failed), the
# agent must log the shared error as one line per interval, not one per
# service, and the operator must read the node error into a
# VirtualService's Programmed condition. Then, with IPVS (live/), the same
# services are programmed and the status, whose live state would pass the
# API server's request limit, stays within 1 MiB with every write landing.
#
#   LVS_AGENT_BIN     the agent (default <repo>/target/debug/node-agent)
#   LVS_OPERATOR_BIN  the operator (default <repo>/target/debug/lvs-operator)
#   LVS_RB_COUNT      how many VirtualServices (default 5000)

# Globals: the EXIT trap (cleanup) runs after the function's locals are gone.
rb_node=rb-d1 rb_ns=report-bounded
rb_ln=lvsnodes.lvs.lvs-operator.io

# rb_cleanup -> stop the processes, delete the objects (also on an early
# return; the operator, if it ran, removes its finalizers meanwhile, or the
# lab's teardown takes the rest).
# The lab has no namespace controller (no kube-controller-manager), so a
# deleted namespace would keep its objects while Terminating, and every later
# scenario's operator would reconcile them: they go as one collection delete.
rb_cleanup() {
  stop_proc agent-rb
  stop_proc agent-rb-live
  kubectl delete --raw "/apis/lvs.lvs-operator.io/v1alpha1/namespaces/$rb_ns/virtualservices" >/dev/null || true
  kubectl delete namespace "$rb_ns" --ignore-not-found --wait=false || true
  retry 120 bash -c '[[ -z $(kubectl get virtualservices.lvs.lvs-operator.io -n "$1" -o name 2>/dev/null | head -n 1) ]]' _ "$rb_ns" ||
    echo "VirtualServices left in $rb_ns after 120s; the lab teardown removes them"
  stop_proc operator-rb
  kubectl delete "$rb_ln" "$rb_node" --ignore-not-found || true
  kubectl delete node "$rb_node" --ignore-not-found || true
}

scenario lvsnode-report-bounded t_report_bounded
t_report_bounded() {
  local name=lvsnode-report-bounded
  local n=${LVS_RB_COUNT:-5000} node=$rb_node ns=$rb_ns bin op_bin
  local ln=$rb_ln vsr=virtualservices.lvs.lvs-operator.io
  bin=$(agent_bin) || { fail "$name" "$bin"; return 0; }
  op_bin=${LVS_OPERATOR_BIN:-$LVS_REPO/target/debug/lvs-operator}
  [[ -x $op_bin ]] || { fail "$name" "$op_bin is missing (run: cargo build -p lvs-operator)"; return 0; }
  trap rb_cleanup EXIT
  ensure_release
  kubectl delete lease lvs-operator-leader -n "$lvs_ns" --ignore-not-found

  kubectl create -f - <<<"{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$node\",\"labels\":{\"lvs-rb\":\"director\"}}}"
  kubectl patch node "$node" --subresource status --type merge \
    -p '{"status":{"addresses":[{"type":"InternalIP","address":"10.0.9.1"}]}}'
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node "$node" "$lvs_ns" "$(lvs_sa agent)" "$LVS_LAB_DIR/agent-$node.kubeconfig"
  kubectl create namespace "$ns"

  # The objects: one List per 500, created by four kubectl processes at once.
  local dir=$LVS_LAB_DIR/report-bounded t0=$SECONDS
  mkdir -p "$dir"
  jq -nc --argjson n "$n" --arg ns "$ns" '
    [range(0; $n) | {apiVersion: "lvs.lvs-operator.io/v1alpha1", kind: "VirtualService",
      metadata: {name: ("vs-\(. | tostring | ("0000" + .)[-5:])"), namespace: $ns},
      spec: {address: "10.200.\(. / 256 | floor).\(. % 256)", port: 80,
             directors: {nodeSelector: {matchLabels: {"lvs-rb": "director"}}},
             realServerSelector: {matchLabels: {app: "rb"}}}}]
    | _nwise(500) | {apiVersion: "v1", kind: "List", items: .}' |
    split -l 1 - "$dir/chunk-"
  if ! printf '%s\n' "$dir"/chunk-* | xargs -P 4 -I{} sh -c 'kubectl create -f "$1" >/dev/null' _ {}; then
    fail "$name" "creating $n VirtualServices failed"
    return 0
  fi
  local have
  have=$(kubectl get "$vsr" -n "$ns" -o name | wc -l)
  echo "created $have VirtualServices in $((SECONDS - t0))s"
  ((have == n)) || { fail "$name" "$have of $n VirtualServices exist after creating them"; return 0; }

  local port
  port=$(free_port 19577)
  start_proc agent-rb env RUST_LOG=info "$bin" --kubeconfig "$LVS_LAB_DIR/agent-$node.kubeconfig" \
    --node-name "$node" --dataplane fake --fake-no-ipvs --node-ip 10.0.9.1 \
    --listen "127.0.0.1:$port" --resync-interval 5 --log-format json >/dev/null

  if ! wait_json 180 ".status.errorCount == $n" "$ln" "$node"; then
    fail "$name" "LvsNode $node did not count $n failing services within 180s: $(jq -c '.status | {programmedCount, errorCount, nodeErrors}' <<<"$wait_last" 2>/dev/null || first_line "$wait_last"); agent log: $(grep -m1 '"ERROR"' "$LVS_LAB_DIR/agent-rb.log" || tail -n 1 "$LVS_LAB_DIR/agent-rb.log")"
    return 0
  fi
  # Let a few retries pass (each re-reports every service's error), then judge.
  sleep 12
  local obj status_bytes obj_bytes
  obj=$(kubectl get "$ln" "$node" -o json)
  status_bytes=$(jq -c '.status' <<<"$obj" | wc -c)
  obj_bytes=$(jq -c '.' <<<"$obj" | wc -c)
  echo "LvsNode $node: status $status_bytes bytes, object $obj_bytes bytes; $(jq -c '.status | {programmedCount, errorCount, omittedErrors, nodeErrors, services: (.services // [] | length)}' <<<"$obj")"
  if ((status_bytes >= 262144)); then
    fail "$name" "the LvsNode status is $status_bytes bytes with $n failing services, expected under 256 KiB"
  elif ! jq -e '[.status.nodeErrors[]? | select(test("IPVS is not available"))] | length == 1' <<<"$obj" >/dev/null; then
    fail "$name" "status.nodeErrors does not name the cause once: $(jq -c '.status.nodeErrors' <<<"$obj")"
  elif ! jq -e ".status.programmedCount == 0 and .status.errorCount == $n" <<<"$obj" >/dev/null; then
    fail "$name" "counts: $(jq -c '.status | {programmedCount, errorCount}' <<<"$obj"), expected 0 programmed and $n failing"
  else
    pass "$name"
  fi

  # The log: the shared error as one line (with the count), not one per service.
  local lines
  lines=$(grep -c '"sync problem"' "$LVS_LAB_DIR/agent-rb.log" || true)
  if ((lines >= 1 && lines <= 10)) && grep '"sync problem"' "$LVS_LAB_DIR/agent-rb.log" | grep -q "\"services\":$n"; then
    pass "$name/log-once"
  else
    fail "$name/log-once" "$lines 'sync problem' log lines in $(grep -c '"sync done"' "$LVS_LAB_DIR/agent-rb.log") syncs, expected 1 to 10, one with services=$n: $(grep -m1 '"sync problem"' "$LVS_LAB_DIR/agent-rb.log" | cut -c1-300)"
  fi

  # The operator reads the node error into the Programmed condition.
  local okc=$LVS_LAB_DIR/operator-rb.kubeconfig op_port
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa operator)" "$okc"
  op_port=$(free_port 18280)
  start_proc operator-rb env POD_NAME=op-rb RUST_LOG=info "$op_bin" --kubeconfig "$okc" \
    --namespace "$lvs_ns" --listen "127.0.0.1:$op_port" --log-format json >/dev/null
  # It reconciles the 5,000 in no particular order: judge the first it writes.
  local first=""
  retry 300 grep -q '"status written"' "$LVS_LAB_DIR/operator-rb.log" &&
    first=$(grep -m1 '"status written"' "$LVS_LAB_DIR/operator-rb.log" | jq -r '.vs // .fields.vs' | cut -d/ -f2)
  if [[ -z $first ]]; then
    fail "$name/operator" "the operator wrote no VirtualService status within 300s: $(grep -m1 -E '"(WARN|ERROR)"' "$LVS_LAB_DIR/operator-rb.log" | cut -c1-300)"
  elif wait_json 30 '[.status.conditions[]? | select(.type == "Programmed")][0] | .status == "False" and .reason == "Failed" and (.message | test("rb-d1: IPVS is not available"))' \
    "$vsr" "$first" -n "$ns"; then
    pass "$name/operator"
  else
    fail "$name/operator" "$first's Programmed condition: $(jq -c '[.status.conditions[]? | select(.type == "Programmed")][0]' <<<"$wait_last" 2>/dev/null || first_line "$wait_last")"
  fi

  # With IPVS the same services are programmed, and their live state
  # (counters, their time, the table hash: about 300 bytes a service) would
  # take the status past what the API server and etcd accept: the agent
  # leaves it out of the last entries (omittedLive) and every write lands.
  stop_proc agent-rb
  port=$(free_port 19577)
  start_proc agent-rb-live env RUST_LOG=info "$bin" --kubeconfig "$LVS_LAB_DIR/agent-$node.kubeconfig" \
    --node-name "$node" --dataplane fake --node-ip 10.0.9.1 --listen "127.0.0.1:$port" \
    --status-counters-interval 5 --log-format json >/dev/null
  if ! wait_json 180 ".status.programmedCount == $n and (.status.omittedLive // 0) > 0" "$ln" "$node"; then
    fail "$name/live" "LvsNode $node did not report $n programmed services with live state left out within 180s: $(jq -c '.status | {programmedCount, errorCount, omittedLive}' <<<"$wait_last" 2>/dev/null || first_line "$wait_last"); agent log: $({ grep -m1 -E 'writing the LvsNode failed|"ERROR"' "$LVS_LAB_DIR/agent-rb-live.log" || tail -n 2 "$LVS_LAB_DIR/agent-rb-live.log"; } | cut -c1-400)"
    return 0
  fi
  obj=$(kubectl get "$ln" "$node" -o json)
  status_bytes=$(jq -c '.status' <<<"$obj" | wc -c)
  local live omitted failed
  live=$(jq '[.status.services[] | select(.counters and .countersTime and .tableHash)] | length' <<<"$obj")
  omitted=$(jq '.status.omittedLive' <<<"$obj")
  failed=$(grep -c '"writing the LvsNode failed' "$LVS_LAB_DIR/agent-rb-live.log" || true)
  echo "LvsNode $node with IPVS: status $status_bytes bytes, $live services with live state, $omitted left out, $failed failed writes"
  if ((status_bytes > 1048576)); then
    fail "$name/live" "the LvsNode status is $status_bytes bytes, expected at most 1 MiB"
  elif ((live == 0 || live + omitted != n)); then
    fail "$name/live" "$live services with live state and $omitted left out, expected some of each and $n in all"
  elif [[ $(jq -r '.status.services[0].counters != null and .status.services[-1].counters == null' <<<"$obj") != true ]]; then
    fail "$name/live" "live state is not kept by the first services by name and left out of the last: $(jq -c '[.status.services[0], .status.services[-1]] | map({name, counters: (.counters != null)})' <<<"$obj")"
  elif ((failed > 0)); then
    fail "$name/live" "$failed failed LvsNode writes: $(grep -m1 '"writing the LvsNode failed' "$LVS_LAB_DIR/agent-rb-live.log" | cut -c1-300)"
  else
    pass "$name/live"
  fi
}
