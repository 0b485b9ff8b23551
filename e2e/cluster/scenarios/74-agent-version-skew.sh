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
