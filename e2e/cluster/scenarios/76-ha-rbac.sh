# Director HA's least privilege (templates/agent-ha.yaml) as the API server
# enforces it, with real ServiceAccount tokens: a release installed with
# ha.enabled=true lets its agent read and write Leases in the release
# namespace only, and the ValidatingAdmissionPolicy lets it write only Leases
# labelled lvs.lvs-operator.io/purpose=director-ha, so it cannot create other
# Leases nor take over one (the operator's leader Lease) by labelling it. HA
# is the chart's default; ha.enabled=false renders none of it.
#
# Its own release and namespace, so the shared release of the other scenarios
# keeps its defaults.

ha_release=lvs-ha
ha_ns=lvs-ha
ha_label=lvs.lvs-operator.io/purpose

# ha_lease NAME [PURPOSE] -> a Lease manifest, labelled with PURPOSE if given.
ha_lease() {
  local labels=""
  [[ -z ${2:-} ]] || labels=", \"labels\": {\"$ha_label\": \"$2\"}"
  printf '{"apiVersion":"coordination.k8s.io/v1","kind":"Lease","metadata":{"name":"%s"%s},"spec":{"holderIdentity":"n1","leaseDurationSeconds":2}}' \
    "$1" "$labels"
}

scenario chart-ha-rbac t_chart_ha_rbac
t_chart_ha_rbac() {
  local chart out rc agent operator akc okc msg_new msg_old
  chart=$(lvs_chart)
  agent="$ha_release-lvs-operator-agent" operator="$ha_release-lvs-operator-operator"

  # On by default: the Lease Role, the policy and the agent's --ha flag.
  out=$(helm template "$ha_release" "$chart" -n "$ha_ns")
  local want missing=()
  for want in agent-ha director-ha --ha; do
    grep -qF -- "$want" <<<"$out" || missing+=("$want")
  done
  if ((${#missing[@]})); then
    fail chart-ha-rbac/on-by-default "the default values render no ${missing[*]}"
  else
    pass chart-ha-rbac/on-by-default
  fi
  # ha.enabled=false: no Lease rights, no policy, no HA flags.
  out=$(helm template "$ha_release" "$chart" -n "$ha_ns" --set ha.enabled=false)
  if grep -qE -- "agent-ha|director-ha|--ha|--sync-" <<<"$out"; then
    fail chart-ha-rbac/off-when-disabled "ha.enabled=false renders HA objects or flags: $(grep -m1 -E -- "agent-ha|director-ha|--ha|--sync-" <<<"$out")"
  else
    pass chart-ha-rbac/off-when-disabled
  fi

  rc=0; out=$(helm install "$ha_release" "$chart" -n "$ha_ns" --create-namespace \
    --set ha.syncDaemon.interface=eth1 --set ha.syncDaemon.syncId=7 2>&1) || rc=$?
  if ((rc != 0)); then
    fail chart-ha-rbac/install "$(error_line "$out")"
    return 0
  fi
  pass chart-ha-rbac/install

  # The DaemonSet passes the HA flags, the namespace from the pod's own.
  local args env
  args=$(kubectl get ds "$agent" -n "$ha_ns" -o jsonpath='{.spec.template.spec.containers[0].args}')
  env=$(kubectl get ds "$agent" -n "$ha_ns" -o json |
    jq -r '.spec.template.spec.containers[0].env[] | select(.name == "POD_NAMESPACE") | .valueFrom.fieldRef.fieldPath')
  local want missing=()
  for want in '"--ha"' --ha-lease-duration=1s --ha-renew-interval=250ms --ha-probe-timeout=300ms \
    --ha-vip-lifetime=2s --ha-preempt-delay=10s \
    '--ha-namespace=$(POD_NAMESPACE)' --sync-interface=eth1 --sync-id=7; do
    [[ $args == *"$want"* ]] || missing+=("$want")
  done
  if ((${#missing[@]})); then
    fail chart-ha-rbac/daemonset-flags "agent args lack ${missing[*]}: $args"
  elif [[ $env != metadata.namespace ]]; then
    fail chart-ha-rbac/daemonset-flags "POD_NAMESPACE comes from '$env', expected metadata.namespace"
  else
    pass chart-ha-rbac/daemonset-flags
  fi

  # RBAC: Leases in the release namespace, no delete, nothing elsewhere.
  local row expect verb ns got
  while read -r expect verb ns; do
    [[ -n $expect ]] || continue
    row=chart-ha-rbac/agent/$expect/$verb/leases@$ns
    got=$(kubectl auth can-i "$verb" leases.coordination.k8s.io -n "$ns" --as "system:serviceaccount:$ha_ns:$agent" 2>&1) || true
    if [[ $got == "$expect" ]]; then pass "$row"; else fail "$row" "kubectl auth can-i answered '$got', expected '$expect'"; fi
  done <<EOF
yes get    $ha_ns
yes list   $ha_ns
yes watch  $ha_ns
yes create $ha_ns
yes update $ha_ns
yes patch  $ha_ns
no  delete $ha_ns
no  create default
no  update default
no  create $lvs_ns
EOF

  msg_new=$(kubectl get validatingadmissionpolicy "$ha_release-lvs-operator-agent-ha-leases" -o jsonpath='{.spec.validations[0].message}')
  msg_old=$(kubectl get validatingadmissionpolicy "$ha_release-lvs-operator-agent-ha-leases" -o jsonpath='{.spec.validations[1].message}')
  if [[ -z $msg_new || -z $msg_old ]]; then
    fail chart-ha-rbac/policy-installed "no ValidatingAdmissionPolicy $ha_release-lvs-operator-agent-ha-leases with two validations"
    return 0
  fi
  pass chart-ha-rbac/policy-installed

  akc=$LVS_LAB_DIR/ha-agent.kubeconfig okc=$LVS_LAB_DIR/ha-operator.kubeconfig
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$ha_ns" "$agent" "$akc"
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$ha_ns" "$operator" "$okc"

  # The policy is loaded asynchronously after install: wait until a dry run
  # of an unlabelled Lease is denied by it before judging real writes.
  if ! retry 20 bash -c '! out=$(kubectl --kubeconfig "$1" create -n "$2" --dry-run=server -f - <<<"$3" 2>&1) &&
      grep -q ValidatingAdmissionPolicy <<<"$out"' _ "$akc" "$ha_ns" "$(ha_lease ha-probe)"; then
    fail chart-ha-rbac/policy-active "a dry-run create of an unlabelled Lease with the agent's token was not denied by the policy within 20s"
  fi

  # expect NAME allowed|policy:MESSAGE|forbidden KUBECTL-ARGS... (stdin passes through)
  expect() {
    local n=$1 want=$2
    shift 2
    rc=0; out=$(kubectl --kubeconfig "$akc" "$@" 2>&1) || rc=$?
    case $want in
      allowed)
        if ((rc == 0)); then pass "$n"; else fail "$n" "kubectl $*: $(error_line "$out")"; fi ;;
      forbidden)
        if ((rc == 0)); then
          fail "$n" "kubectl $* was allowed, expected Forbidden by RBAC"
        elif grep -q ValidatingAdmissionPolicy <<<"$out" || ! grep -q Forbidden <<<"$out"; then
          fail "$n" "kubectl $* failed, but not as RBAC's Forbidden: $(error_line "$out")"
        else
          pass "$n"
        fi ;;
      policy:*)
        if ((rc == 0)); then
          fail "$n" "kubectl $* was allowed, expected the policy to deny it"
        elif grep -qF "${want#policy:}" <<<"$out"; then
          pass "$n"
        else
          fail "$n" "denied, but not with the policy's message: $(error_line "$out")"
        fi ;;
    esac
  }

  expect chart-ha-rbac/agent-creates-labelled-lease allowed create -n "$ha_ns" -f - <<<"$(ha_lease lvs-node-n1 director-ha)"
  expect chart-ha-rbac/agent-updates-labelled-lease allowed replace -n "$ha_ns" -f - \
    <<<"$(kubectl --kubeconfig "$akc" get lease lvs-node-n1 -n "$ha_ns" -o json | jq '.spec.holderIdentity = "n2"')"
  expect chart-ha-rbac/agent-patches-labelled-lease allowed patch lease lvs-node-n1 -n "$ha_ns" --type merge \
    -p '{"spec":{"leaseDurationSeconds":3}}'
  expect chart-ha-rbac/agent-unlabelled-lease-denied "policy:$msg_new" create -n "$ha_ns" -f - <<<"$(ha_lease lvs-unlabelled)"
  expect chart-ha-rbac/agent-other-purpose-denied "policy:$msg_new" create -n "$ha_ns" -f - <<<"$(ha_lease lvs-other other)"
  expect chart-ha-rbac/agent-unlabelling-denied "policy:$msg_new" replace -n "$ha_ns" -f - \
    <<<"$(kubectl --kubeconfig "$akc" get lease lvs-node-n1 -n "$ha_ns" -o json | jq --arg l "$ha_label" 'del(.metadata.labels[$l])')"
  expect chart-ha-rbac/agent-delete-forbidden forbidden delete lease lvs-node-n1 -n "$ha_ns"
  expect chart-ha-rbac/agent-other-namespace-forbidden forbidden create -n default -f - <<<"$(ha_lease lvs-node-n1 director-ha)"

  # The operator's leader Lease: the operator (not matched by the policy)
  # creates it unlabelled as before; the agent cannot take it over by adding
  # the label, neither with an update nor with a patch.
  rc=0; out=$(kubectl --kubeconfig "$okc" create -n "$ha_ns" -f - <<<"$(ha_lease lvs-operator-leader)" 2>&1) || rc=$?
  if ((rc == 0)); then pass chart-ha-rbac/operator-leader-lease-unaffected; else fail chart-ha-rbac/operator-leader-lease-unaffected "$(error_line "$out")"; fi
  expect chart-ha-rbac/agent-takeover-of-leader-lease-denied "policy:$msg_old" replace -n "$ha_ns" -f - \
    <<<"$(kubectl get lease lvs-operator-leader -n "$ha_ns" -o json | jq --arg l "$ha_label" '.metadata.labels[$l] = "director-ha" | .spec.holderIdentity = "agent"')"
  expect chart-ha-rbac/agent-label-patch-of-leader-lease-denied "policy:$msg_old" patch lease lvs-operator-leader -n "$ha_ns" \
    --type merge -p "{\"metadata\":{\"labels\":{\"$ha_label\":\"director-ha\"}}}"
  local holder
  holder=$(kubectl get lease lvs-operator-leader -n "$ha_ns" -o jsonpath='{.spec.holderIdentity}')
  if [[ $holder == n1 ]]; then pass chart-ha-rbac/leader-lease-intact; else fail chart-ha-rbac/leader-lease-intact "holderIdentity is '$holder', expected n1"; fi

  kubectl delete lease --all -n "$ha_ns" --ignore-not-found
  helm uninstall "$ha_release" -n "$ha_ns" --wait --timeout 60s
  kubectl delete namespace "$ha_ns" --wait=false
}
