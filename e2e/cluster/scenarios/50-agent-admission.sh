# The chart's own-node admission policy (templates/agent-admission.yaml), with
# real tokens: the agent ServiceAccount may write only the LvsNode named after
# the node its token is bound to. Node-bound tokens (TokenRequest with a Node
# as bound object) and pod-bound tokens of a pod on that node both carry the
# node's name in the user's extra info; an unbound token carries none.

# The LvsNode API path; writes go through api_patch (see lib.sh: the agent's
# ServiceAccount may not GET, which `kubectl patch` does first).
adm_ln=/apis/lvs.lvs-operator.io/v1alpha1/lvsnodes

adm_lvsnode() { # NAME -> an LvsNode manifest
  printf '{"apiVersion":"lvs.lvs-operator.io/v1alpha1","kind":"LvsNode","metadata":{"name":"%s"},"spec":{"nodeName":"%s"}}' "$1" "$1"
}

# token_extra TOKEN KEY -> the first value of KEY in the TokenReview's user extra.
token_extra() {
  kubectl create -o json -f - <<<"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{\"token\":\"$1\"}}" |
    jq -r --arg k "$2" '.status.user.extra[$k][0] // empty'
}

scenario agent-admission t_agent_admission
t_agent_admission() {
  ensure_release
  local agent policy_msg n1_uid tok_n1 tok_pod kc rc out n
  agent=$(lvs_sa agent)
  policy_msg=$(kubectl get validatingadmissionpolicy "$lvs_release-lvs-operator-agent-own-node" \
    -o jsonpath='{.spec.validations[0].message}')
  if [[ -z $policy_msg ]]; then
    fail admission/policy-installed "the chart installed no ValidatingAdmissionPolicy $lvs_release-lvs-operator-agent-own-node"
    return 0
  fi
  pass admission/policy-installed

  for n in adm-n1 adm-n2; do
    kubectl create -f - <<<"{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$n\"}}"
  done
  n1_uid=$(kubectl get node adm-n1 -o jsonpath='{.metadata.uid}')

  # A token bound to Node adm-n1, through sa-kubeconfig.sh --bind-node.
  kc=$LVS_LAB_DIR/agent-adm-n1.kubeconfig
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node adm-n1 "$lvs_ns" "$agent" "$kc"
  tok_n1=$(kubectl --kubeconfig "$kc" config view --raw -o jsonpath='{.users[0].user.token}')
  local claim_node extra_node
  claim_node=$(jwt_claims "$tok_n1" | jq -r '."kubernetes.io".node.uid // empty')
  extra_node=$(token_extra "$tok_n1" authentication.kubernetes.io/node-name)
  if [[ $claim_node != "$n1_uid" ]]; then
    fail admission/node-bound-token "token claims node uid '$claim_node', expected adm-n1's $n1_uid"
  elif [[ $extra_node != adm-n1 ]]; then
    fail admission/node-bound-token "TokenReview extra node-name is '$extra_node', expected adm-n1"
  else
    pass admission/node-bound-token
  fi

  # The policy is compiled and loaded asynchronously after install: wait until
  # a dry run of a foreign write is denied before judging real writes.
  if ! retry 20 bash -c '! kubectl_out=$(kubectl --kubeconfig "$1" create --dry-run=server -f - <<<"$2" 2>&1) &&
      grep -q "ValidatingAdmissionPolicy" <<<"$kubectl_out"' _ "$kc" "$(adm_lvsnode adm-n2)"; then
    fail admission/policy-active "a dry-run create of LvsNode adm-n2 with adm-n1's token was not denied by the policy within 20s"
  fi

  rc=0; out=$(kubectl --kubeconfig "$kc" create -f - <<<"$(adm_lvsnode adm-n1)" 2>&1) || rc=$?
  if ((rc == 0)); then pass admission/own-node-create; else fail admission/own-node-create "$(error_line "$out")"; fi
  rc=0; out=$(api_patch "$kc" "$adm_ln/adm-n1/status" '{"status":{"programmedCount":0,"errorCount":0}}' 2>&1) || rc=$?
  if ((rc == 0)); then pass admission/own-node-status; else fail admission/own-node-status "$(error_line "$out")"; fi

  expect_denied() { # NAME KUBECTL-ARGS... (stdin passes through), or NAME api_patch ARGS...
    local n=$1
    shift
    rc=0
    if [[ $1 == api_patch ]]; then out=$("$@" 2>&1) || rc=$?; else out=$(kubectl "$@" 2>&1) || rc=$?; fi
    if ((rc == 0)); then
      fail "$n" "$* was allowed"
    elif grep -qF "$policy_msg" <<<"$out"; then
      pass "$n"
    else
      fail "$n" "denied, but not with the policy's message: $(error_line "$out")"
    fi
  }
  expect_denied admission/other-node-create-denied --kubeconfig "$kc" create -f - <<<"$(adm_lvsnode adm-n2)"
  kubectl create -f - <<<"$(adm_lvsnode adm-n2)"
  expect_denied admission/other-node-status-denied api_patch "$kc" "$adm_ln/adm-n2/status" '{"status":{"programmedCount":7}}'
  expect_denied admission/other-node-spec-denied api_patch "$kc" "$adm_ln/adm-n2" '{"metadata":{"labels":{"forged":"yes"}}}'

  # The LvsSnapshot answers too: the status of its own node's only.
  local adm_snap=/apis/lvs.lvs-operator.io/v1alpha1/lvssnapshots
  for n in adm-n1 adm-n2; do
    kubectl create -f - <<<"{\"apiVersion\":\"lvs.lvs-operator.io/v1alpha1\",\"kind\":\"LvsSnapshot\",\"metadata\":{\"name\":\"$n\"},\"spec\":{\"nodeName\":\"$n\",\"request\":\"r1\"}}"
  done
  rc=0; out=$(api_patch "$kc" "$adm_snap/adm-n1/status" '{"status":{"request":"r1"}}' 2>&1) || rc=$?
  if ((rc == 0)); then pass admission/own-snapshot-status; else fail admission/own-snapshot-status "$(error_line "$out")"; fi
  expect_denied admission/other-snapshot-status-denied api_patch "$kc" "$adm_snap/adm-n2/status" '{"status":{"request":"r1"}}'
  kubectl delete lvssnapshot.lvs.lvs-operator.io adm-n1 adm-n2 --ignore-not-found

  # An unbound token (no node in its extra) may write no LvsNode at all.
  local ukc=$LVS_LAB_DIR/agent-unbound.kubeconfig
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$agent" "$ukc"
  expect_denied admission/unbound-create-denied --kubeconfig "$ukc" create -f - <<<"$(adm_lvsnode adm-n3)"
  expect_denied admission/unbound-status-denied api_patch "$ukc" "$adm_ln/adm-n1/status" '{"status":{"programmedCount":7}}'

  # A DaemonSet pod's token: bound to a Pod scheduled on adm-n2, it carries
  # adm-n2 and may write LvsNode adm-n2 but not adm-n1.
  kubectl create -n "$lvs_ns" -f - <<YAML
apiVersion: v1
kind: Pod
metadata: {name: adm-agent-on-n2}
spec:
  nodeName: adm-n2
  serviceAccountName: $agent
  containers: [{name: agent, image: lvs-operator.invalid/none}]
YAML
  tok_pod=$(kubectl create token "$agent" -n "$lvs_ns" --duration 10m --bound-object-kind Pod --bound-object-name adm-agent-on-n2)
  extra_node=$(token_extra "$tok_pod" authentication.kubernetes.io/node-name)
  rc=0; out=$(api_patch "$tok_pod" "$adm_ln/adm-n2/status" '{"status":{"programmedCount":1}}' 2>&1) || rc=$?
  if [[ $extra_node != adm-n2 ]]; then
    fail admission/pod-bound-token "TokenReview extra node-name is '$extra_node', expected adm-n2 (pod's spec.nodeName)"
  elif ((rc != 0)); then
    fail admission/pod-bound-token "writing its own LvsNode adm-n2 was refused: $(error_line "$out")"
  else
    pass admission/pod-bound-token
  fi
  rc=0; out=$(api_patch "$tok_pod" "$adm_ln/adm-n1/status" '{"status":{"programmedCount":7}}' 2>&1) || rc=$?
  if ((rc == 0)); then
    fail admission/pod-bound-other-denied "the pod on adm-n2 could write LvsNode adm-n1"
  elif grep -qF "$policy_msg" <<<"$out"; then
    pass admission/pod-bound-other-denied
  else
    fail admission/pod-bound-other-denied "denied, but not with the policy's message: $(error_line "$out")"
  fi

  # The policy leaves other users alone: the admin wrote adm-n2 above; the
  # operator is stopped by RBAC (it has no write verbs on lvsnodes), not by it.

  # Deleting the Node invalidates the tokens bound to it.
  kubectl delete pod adm-agent-on-n2 -n "$lvs_ns" --grace-period 0 --force --wait=false
  kubectl delete lvsnode.lvs.lvs-operator.io adm-n1 adm-n2 --ignore-not-found
  kubectl delete node adm-n1
  if retry 10 bash -c '! kubectl --kubeconfig "$1" auth whoami >/dev/null 2>&1' _ "$kc"; then
    pass admission/node-deletion-invalidates-token
  else
    fail admission/node-deletion-invalidates-token "adm-n1's token still authenticates 10s after Node adm-n1 was deleted"
  fi
  kubectl delete node adm-n2
}
