# agent-version-skew: a VirtualService written against a newer CRD (here the
# lab's CRD gains a field spec.futureField this agent does not know) must
# affect only itself: the agent skips it and reports it on its LvsNode
# (status.unreadable), and goes on programming and reporting the others,
# both those listed at start and those created while it runs.
#
#   LVS_AGENT_BIN  the agent (default <repo>/target/debug/node-agent)

# Globals: the EXIT trap (cleanup) runs after the function's locals are gone.
vsk_node=vsk-d1
vsk_ln=lvsnodes.lvs.lvs-operator.io
vsk_crd=virtualservices.lvs.lvs-operator.io
vsk_field=/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/futureField

# vsk_cleanup -> stop the agent; the CRD and objects as they were (also on an
# early return, for the scenarios after this one).
vsk_cleanup() {
  stop_proc agent-vsk
  kubectl delete virtualservices.lvs.lvs-operator.io vsk-newer vsk-a vsk-b -n default --ignore-not-found --wait=false || true
  if kubectl get crd "$vsk_crd" -o json | jq -e '.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.futureField' >/dev/null 2>&1; then
    kubectl patch crd "$vsk_crd" --type json -p "[{\"op\":\"remove\",\"path\":\"$vsk_field\"}]" || true
  fi
  kubectl delete "$vsk_ln" "$vsk_node" --ignore-not-found || true
  kubectl delete node "$vsk_node" --ignore-not-found || true
}

scenario agent-version-skew t_version_skew
t_version_skew() {
  local name=agent-version-skew node=$vsk_node bin
  local ln=$vsk_ln crd=$vsk_crd field_path=$vsk_field
  bin=$(agent_bin) || { fail "$name" "$bin"; return 0; }
  trap vsk_cleanup EXIT
  ensure_release

  # The "newer CRD": one more spec field.
  kubectl patch crd "$crd" --type json \
    -p "[{\"op\":\"add\",\"path\":\"$field_path\",\"value\":{\"type\":\"string\",\"description\":\"a field of a newer version\"}}]"

  kubectl create -f - <<<"{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$node\",\"labels\":{\"lvs-vsk\":\"director\"}}}"
  kubectl patch node "$node" --subresource status --type merge \
    -p '{"status":{"addresses":[{"type":"InternalIP","address":"10.0.8.1"}]}}'
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node "$node" "$lvs_ns" "$(lvs_sa agent)" "$LVS_LAB_DIR/agent-$node.kubeconfig"

  vsk_vs() { # NAME ADDRESS [EXTRA-SPEC-JSON]
    echo "{\"apiVersion\":\"lvs.lvs-operator.io/v1alpha1\",\"kind\":\"VirtualService\",
      \"metadata\":{\"name\":\"$1\",\"namespace\":\"default\"},
      \"spec\":{\"address\":\"$2\",\"port\":80,
        \"directors\":{\"nodeSelector\":{\"matchLabels\":{\"lvs-vsk\":\"director\"}}},
        \"realServerSelector\":{\"matchLabels\":{\"app\":\"$1\"}}${3:+,$3}}}"
  }
  # The API server's schema cache takes the new field a moment after the patch.
  if ! retry 30 bash -c 'kubectl apply -f - <<<"$1" >/dev/null && kubectl get "$2" vsk-newer -n default -o jsonpath="{.spec.futureField}" | grep -q newer' \
    _ "$(vsk_vs vsk-newer 198.51.100.30 '"futureField":"from a newer release"')" virtualservices.lvs.lvs-operator.io; then
    fail "$name" "the API server did not keep spec.futureField of vsk-newer after the CRD patch: $(kubectl get virtualservices.lvs.lvs-operator.io vsk-newer -n default -o json 2>&1 | jq -c .spec 2>/dev/null)"
    return 0
  fi
  kubectl apply -f - <<<"$(vsk_vs vsk-a 198.51.100.31)"

  # Listed at start: the normal one is reported, the newer one is reported unreadable.
  local port
  port=$(free_port 19677)
  start_proc agent-vsk env RUST_LOG=info "$bin" --kubeconfig "$LVS_LAB_DIR/agent-$node.kubeconfig" \
    --node-name "$node" --dataplane fake --node-ip 10.0.8.1 \
    --listen "127.0.0.1:$port" --resync-interval 2 --log-format json >/dev/null
  local want_a='([.status.services[]? | select(.error == null) | .name] == ["default/vsk-a"])'
  local want_bad='([.status.unreadable[]? | select(test("VirtualService default/vsk-newer: .*futureField"))] | length == 1)'
  if ! wait_json 60 "$want_a and $want_bad and .status.programmedCount == 1" "$ln" "$node"; then
    fail "$name" "at start: LvsNode $node $(jq -c '.status' <<<"$wait_last" 2>/dev/null || first_line "$wait_last"), expected default/vsk-a programmed and vsk-newer in status.unreadable; agent log: $(grep -m1 -E '"(WARN|ERROR)"' "$LVS_LAB_DIR/agent-vsk.log" | cut -c1-300)"
    return 0
  fi
  # Created while it runs: no freeze, the new normal one is programmed too,
  # and a normal object turning "newer" is left out and reported.
  kubectl apply -f - <<<"$(vsk_vs vsk-b 198.51.100.32)"
  kubectl patch virtualservices.lvs.lvs-operator.io vsk-a -n default --type merge -p '{"spec":{"futureField":"x"}}'
  if ! wait_json 60 '([.status.services[]? | select(.error == null) | .name] == ["default/vsk-b"]) and ([.status.unreadable[]? | select(test("default/vsk-(a|newer):"))] | length == 2)' "$ln" "$node"; then
    fail "$name" "while running: LvsNode $node $(jq -c '.status' <<<"$wait_last" 2>/dev/null || first_line "$wait_last"), expected only default/vsk-b programmed and vsk-a, vsk-newer unreadable"
    return 0
  fi
  # Back to a field it knows: vsk-a is programmed again and no longer reported.
  kubectl patch virtualservices.lvs.lvs-operator.io vsk-a -n default --type json -p '[{"op":"remove","path":"/spec/futureField"}]'
  if wait_json 60 '([.status.services[]?.name] == ["default/vsk-a", "default/vsk-b"]) and ([.status.unreadable[]?] | length == 1)' "$ln" "$node"; then
    pass "$name"
  else
    fail "$name" "after removing vsk-a's futureField: LvsNode $node $(jq -c '.status' <<<"$wait_last" 2>/dev/null || first_line "$wait_last")"
  fi
}

# agent-version-skew/operator: the same skew, seen by the operator. With one
# VirtualService carrying the newer field, the operator must go on writing the
# status of the normal one (at start and after a spec change), leave the odd
# one alone, log it with the field's path and count it in
# lvs_operator_unreadable_objects.
#
#   LVS_OPERATOR_BIN  the operator (default <repo>/target/debug/lvs-operator)
vsko_cleanup() {
  stop_proc operator-vsk
  kubectl delete virtualservices.lvs.lvs-operator.io vsko-newer vsko-a -n default --ignore-not-found --wait=false || true
  if kubectl get crd "$vsk_crd" -o json | jq -e '.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.futureField' >/dev/null 2>&1; then
    kubectl patch crd "$vsk_crd" --type json -p "[{\"op\":\"remove\",\"path\":\"$vsk_field\"}]" || true
  fi
}

scenario agent-version-skew-operator t_version_skew_operator
t_version_skew_operator() {
  local name=agent-version-skew/operator crd=$vsk_crd field_path=$vsk_field
  local bin=${LVS_OPERATOR_BIN:-$LVS_REPO/target/debug/lvs-operator}
  if [[ ! -x $bin ]]; then
    fail "$name" "$bin is missing (run: cargo build -p lvs-operator, or set LVS_OPERATOR_BIN)"
    return 0
  fi
  trap vsko_cleanup EXIT
  trap 'exit 143' TERM INT
  ensure_release

  kubectl patch crd "$crd" --type json \
    -p "[{\"op\":\"add\",\"path\":\"$field_path\",\"value\":{\"type\":\"string\",\"description\":\"a field of a newer version\"}}]"
  vsko_vs() { # NAME ADDRESS PORT [EXTRA-SPEC-JSON]
    echo "{\"apiVersion\":\"lvs.lvs-operator.io/v1alpha1\",\"kind\":\"VirtualService\",
      \"metadata\":{\"name\":\"$1\",\"namespace\":\"default\"},
      \"spec\":{\"address\":\"$2\",\"port\":$3,
        \"directors\":{\"nodeSelector\":{\"matchLabels\":{\"lvs-vsko\":\"director\"}}},
        \"realServerSelector\":{\"matchLabels\":{\"app\":\"$1\"}}${4:+,$4}}}"
  }
  if ! retry 30 bash -c 'kubectl apply -f - <<<"$1" >/dev/null && kubectl get "$2" vsko-newer -n default -o jsonpath="{.spec.futureField}" | grep -q newer' \
    _ "$(vsko_vs vsko-newer 198.51.100.40 80 '"futureField":"from a newer release"')" virtualservices.lvs.lvs-operator.io; then
    fail "$name" "the API server did not keep spec.futureField of vsko-newer after the CRD patch"
    return 0
  fi
  kubectl apply -f - <<<"$(vsko_vs vsko-a 198.51.100.41 80)"

  local okc=$LVS_LAB_DIR/operator-vsk.kubeconfig port
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa operator)" "$okc"
  port=$(free_port 19780)
  start_proc operator-vsk env POD_NAME=op-vsk RUST_LOG=info "$bin" --kubeconfig "$okc" \
    --namespace "$lvs_ns" --listen "127.0.0.1:$port" --leader-elect false --log-format json >/dev/null
  local log=$LVS_LAB_DIR/operator-vsk.log current='.status.observedGeneration == .metadata.generation and (.status.conditions | length > 0)'

  # Listed at start: the normal one gets its status, the newer one none.
  if ! wait_json 60 "$current" virtualservices.lvs.lvs-operator.io vsko-a -n default; then
    fail "$name" "at start: vsko-a status $(jq -c '.status' <<<"$wait_last" 2>/dev/null || first_line "$wait_last"), metadata.generation $(jq -c '.metadata.generation' <<<"$wait_last" 2>/dev/null); expected a status of the current generation; operator log: $(grep -m1 -E '"(WARN|ERROR)"' "$log" | cut -c1-300)"
    return 0
  fi
  # Still running, not frozen: a spec change of the normal one is seen.
  kubectl patch virtualservices.lvs.lvs-operator.io vsko-a -n default --type merge -p '{"spec":{"port":81}}'
  if ! wait_json 60 "$current and .metadata.generation > 1" virtualservices.lvs.lvs-operator.io vsko-a -n default; then
    fail "$name" "after a spec change: vsko-a observedGeneration $(jq -c '.status.observedGeneration' <<<"$wait_last" 2>/dev/null), generation $(jq -c '.metadata.generation' <<<"$wait_last" 2>/dev/null); expected them equal"
    return 0
  fi
  local bad=() newer_status metrics warns
  newer_status=$(kubectl get virtualservices.lvs.lvs-operator.io vsko-newer -n default -o jsonpath='{.status}')
  [[ -z $newer_status ]] || bad+=("vsko-newer has a status ($newer_status), expected none: the operator cannot read it")
  metrics=$(curl -fsS "http://127.0.0.1:$port/metrics" 2>&1) || true
  grep -qx 'lvs_operator_unreadable_objects{kind="VirtualService"} 1' <<<"$metrics" ||
    bad+=("/metrics: $(grep -m1 unreadable_objects <<<"$metrics" || first_line "$metrics"), expected lvs_operator_unreadable_objects{kind=\"VirtualService\"} 1")
  warns=$(grep -c 'VirtualService default/vsko-newer' "$log" || true)
  grep -q 'VirtualService default/vsko-newer.*spec.futureField' "$log" ||
    bad+=("the operator log does not name vsko-newer and spec.futureField")
  ((warns <= 1)) || bad+=("the operator logged vsko-newer $warns times, expected once")
  if ((${#bad[@]})); then
    fail "$name" "$(printf '%s; ' "${bad[@]}")"
  else
    pass "$name"
  fi
}
