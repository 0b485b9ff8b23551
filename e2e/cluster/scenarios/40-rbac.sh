# The chart's RBAC as the API server enforces it: a matrix of what the operator
# and agent ServiceAccounts must and must not be able to do, asked with
# `kubectl auth can-i --as`, then a few rows again with real tokens. The "yes"
# rows are the calls the binaries make; the "no" rows include every verb the
# chart once granted that no code uses (get of single objects, update, watch
# and patch of the Lease, core/v1 Events, the agent getting single LvsNodes;
# it lists and watches them for readiness gating). The
# agent's Lease rows are director HA's (on by default): Leases in the release
# namespace only, never deleted; 76-ha-rbac.sh proves that the admission
# policy narrows them to the purpose-labelled ones.
#
# The "plugin" rows are the ClusterRole for `kubectl lvs` users, asked as a
# ServiceAccount this scenario binds to it (the chart binds it only to
# plugin.rbac.subjects; rbac_plugin_binding checks that rendering).
#
# One result line per row: rbac/<sa>/<yes|no>/<verb>/<resource>[/<subresource>][#<name>]@<scope>
# where scope is a namespace, or "all" (every namespace / cluster-scoped).

# sa       expect verb    resource                               subresource name                 scope
rbac_matrix='
operator  yes    list    virtualservices.lvs.lvs-operator.io    -           -                    all
operator  yes    watch   virtualservices.lvs.lvs-operator.io    -           -                    all
operator  yes    list    realservers.lvs.lvs-operator.io        -           -                    all
operator  yes    watch   realservers.lvs.lvs-operator.io        -           -                    all
operator  yes    list    lvsnodes.lvs.lvs-operator.io           -           -                    all
operator  yes    watch   lvsnodes.lvs.lvs-operator.io           -           -                    all
operator  yes    list    nodes                                  -           -                    all
operator  yes    watch   nodes                                  -           -                    all
operator  yes    patch   virtualservices.lvs.lvs-operator.io    status      -                    all
operator  yes    patch   realservers.lvs.lvs-operator.io        status      -                    all
operator  yes    list    lvsaddresspools.lvs.lvs-operator.io    -           -                    all
operator  yes    watch   lvsaddresspools.lvs.lvs-operator.io    -           -                    all
operator  yes    patch   lvsaddresspools.lvs.lvs-operator.io    status      -                    all
operator  no     patch   lvsaddresspools.lvs.lvs-operator.io    -           -                    all
operator  no     create  lvsaddresspools.lvs.lvs-operator.io    -           -                    all
operator  yes    list    namespaces                             -           -                    all
operator  yes    watch   namespaces                             -           -                    all
operator  yes    list    services                               -           -                    all
operator  yes    watch   services                               -           -                    all
operator  yes    list    endpointslices.discovery.k8s.io        -           -                    all
operator  yes    watch   endpointslices.discovery.k8s.io        -           -                    all
operator  no     patch   namespaces                             -           -                    all
operator  yes    patch   virtualservices.lvs.lvs-operator.io    -           -                    all
operator  yes    create  virtualservices.lvs.lvs-operator.io    -           -                    all
operator  yes    delete  virtualservices.lvs.lvs-operator.io    -           -                    all
operator  yes    create  realservers.lvs.lvs-operator.io        -           -                    all
operator  yes    patch   realservers.lvs.lvs-operator.io        -           -                    all
operator  yes    delete  realservers.lvs.lvs-operator.io        -           -                    all
operator  yes    list    services                               -           -                    all
operator  yes    watch   services                               -           -                    all
operator  yes    patch   services                               status      -                    all
operator  yes    list    endpointslices.discovery.k8s.io        -           -                    all
operator  yes    watch   endpointslices.discovery.k8s.io        -           -                    all
operator  yes    list    lvsaddresspools.lvs.lvs-operator.io    -           -                    all
operator  yes    get     namespaces                             -           -                    all
operator  no     patch   services                               -           -                    all
operator  no     delete  services                               -           -                    all
operator  no     create  endpointslices.discovery.k8s.io        -           -                    all
operator  yes    create  events.events.k8s.io                   -           -                    all
operator  yes    patch   events.events.k8s.io                   -           -                    all
operator  yes    create  leases.coordination.k8s.io             -           -                    lvs-system
operator  yes    get     leases.coordination.k8s.io             -           lvs-operator-leader  lvs-system
operator  yes    update  leases.coordination.k8s.io             -           lvs-operator-leader  lvs-system
operator  no     update  leases.coordination.k8s.io             -           another-lease        lvs-system
operator  no     create  leases.coordination.k8s.io             -           -                    default
operator  no     patch   leases.coordination.k8s.io             -           lvs-operator-leader  lvs-system
operator  no     watch   leases.coordination.k8s.io             -           lvs-operator-leader  lvs-system
operator  no     get     virtualservices.lvs.lvs-operator.io    -           -                    all
operator  no     update  virtualservices.lvs.lvs-operator.io    -           -                    all
operator  no     update  virtualservices.lvs.lvs-operator.io    status      -                    all
operator  no     get     virtualservices.lvs.lvs-operator.io    status      -                    all
operator  no     get     realservers.lvs.lvs-operator.io        -           -                    all
operator  no     update  realservers.lvs.lvs-operator.io        -           -                    all
operator  no     update  realservers.lvs.lvs-operator.io        status      -                    all
operator  no     get     lvsnodes.lvs.lvs-operator.io           -           -                    all
operator  no     get     nodes                                  -           -                    all
operator  no     create  events                                 -           -                    all
operator  no     patch   events                                 -           -                    all
operator  no     get     secrets                                -           -                    lvs-system
operator  no     list    secrets                                -           -                    all
operator  no     delete  customresourcedefinitions.apiextensions.k8s.io -   -                    all
operator  no     create  pods                                   -           -                    all
operator  no     patch   nodes                                  -           -                    all
operator  no     update  nodes                                  -           -                    all
operator  no     patch   nodes                                  status      -                    all
operator  no     create  lvsnodes.lvs.lvs-operator.io           -           -                    all
operator  no     patch   lvsnodes.lvs.lvs-operator.io           status      -                    all
agent     yes    list    virtualservices.lvs.lvs-operator.io    -           -                    all
agent     yes    watch   virtualservices.lvs.lvs-operator.io    -           -                    all
agent     yes    list    realservers.lvs.lvs-operator.io        -           -                    all
agent     yes    watch   realservers.lvs.lvs-operator.io        -           -                    all
agent     yes    list    lvsaddresspools.lvs.lvs-operator.io    -           -                    all
agent     yes    watch   lvsaddresspools.lvs.lvs-operator.io    -           -                    all
agent     no     patch   lvsaddresspools.lvs.lvs-operator.io    status      -                    all
agent     yes    list    lvsnodeprofiles.lvs.lvs-operator.io    -           -                    all
agent     yes    watch   lvsnodeprofiles.lvs.lvs-operator.io    -           -                    all
agent     no     get     lvsnodeprofiles.lvs.lvs-operator.io    -           -                    all
agent     no     patch   lvsnodeprofiles.lvs.lvs-operator.io    -           -                    all
operator  no     list    lvsnodeprofiles.lvs.lvs-operator.io    -           -                    all
agent     yes    list    namespaces                             -           -                    all
agent     yes    watch   namespaces                             -           -                    all
agent     no     patch   namespaces                             -           -                    all
agent     yes    list    nodes                                  -           -                    all
agent     yes    watch   nodes                                  -           -                    all
agent     yes    create  lvsnodes.lvs.lvs-operator.io           -           -                    all
agent     yes    patch   lvsnodes.lvs.lvs-operator.io           -           -                    all
agent     yes    patch   lvsnodes.lvs.lvs-operator.io           status      -                    all
agent     no     get     virtualservices.lvs.lvs-operator.io    -           -                    all
agent     no     get     realservers.lvs.lvs-operator.io        -           -                    all
agent     no     get     nodes                                  -           -                    all
agent     no     get     lvsnodes.lvs.lvs-operator.io           -           -                    all
agent     yes    list    lvsnodes.lvs.lvs-operator.io           -           -                    all
agent     yes    watch   lvsnodes.lvs.lvs-operator.io           -           -                    all
agent     no     update  lvsnodes.lvs.lvs-operator.io           -           -                    all
agent     no     get     lvsnodes.lvs.lvs-operator.io           status      -                    all
agent     no     update  lvsnodes.lvs.lvs-operator.io           status      -                    all
agent     no     get     secrets                                -           -                    lvs-system
agent     no     list    secrets                                -           -                    all
agent     no     update  virtualservices.lvs.lvs-operator.io    -           -                    all
agent     no     patch   virtualservices.lvs.lvs-operator.io    -           -                    all
agent     no     update  realservers.lvs.lvs-operator.io        -           -                    all
agent     no     patch   realservers.lvs.lvs-operator.io        -           -                    all
agent     no     patch   virtualservices.lvs.lvs-operator.io    status      -                    all
agent     no     update  virtualservices.lvs.lvs-operator.io    status      -                    all
agent     no     patch   realservers.lvs.lvs-operator.io        status      -                    all
agent     no     delete  lvsnodes.lvs.lvs-operator.io           -           -                    all
agent     no     delete  customresourcedefinitions.apiextensions.k8s.io -   -                    all
agent     no     create  pods                                   -           -                    all
agent     no     patch   nodes                                  -           -                    all
agent     no     update  nodes                                  -           -                    all
agent     no     patch   nodes                                  status      -                    all
agent     yes    create  leases.coordination.k8s.io             -           -                    lvs-system
agent     yes    patch   leases.coordination.k8s.io             -           -                    lvs-system
agent     no     delete  leases.coordination.k8s.io             -           -                    lvs-system
agent     no     create  leases.coordination.k8s.io             -           -                    default
agent     no     create  events.events.k8s.io                   -           -                    all
agent     yes    list    lvssnapshots.lvs.lvs-operator.io       -           -                    all
agent     yes    watch   lvssnapshots.lvs.lvs-operator.io       -           -                    all
agent     yes    patch   lvssnapshots.lvs.lvs-operator.io       status      -                    all
agent     no     create  lvssnapshots.lvs.lvs-operator.io       -           -                    all
agent     no     delete  lvssnapshots.lvs.lvs-operator.io       -           -                    all
agent     no     patch   lvssnapshots.lvs.lvs-operator.io       -           -                    all
agent     no     update  lvssnapshots.lvs.lvs-operator.io       status      -                    all
operator  no     list    lvssnapshots.lvs.lvs-operator.io       -           -                    all
operator  no     create  lvssnapshots.lvs.lvs-operator.io       -           -                    all
operator  no     patch   lvssnapshots.lvs.lvs-operator.io       status      -                    all
plugin    yes    get     virtualservices.lvs.lvs-operator.io    -           -                    all
plugin    yes    list    virtualservices.lvs.lvs-operator.io    -           -                    all
plugin    yes    watch   virtualservices.lvs.lvs-operator.io    -           -                    all
plugin    yes    list    realservers.lvs.lvs-operator.io        -           -                    all
plugin    yes    get     lvsnodes.lvs.lvs-operator.io           -           -                    all
plugin    yes    list    lvsnodes.lvs.lvs-operator.io           -           -                    all
plugin    yes    watch   lvsaddresspools.lvs.lvs-operator.io    -           -                    all
plugin    yes    get     lvssnapshots.lvs.lvs-operator.io       -           -                    all
plugin    yes    watch   lvssnapshots.lvs.lvs-operator.io       -           -                    all
plugin    yes    create  lvssnapshots.lvs.lvs-operator.io       -           -                    all
plugin    yes    patch   lvssnapshots.lvs.lvs-operator.io       -           -                    all
plugin    no     delete  lvssnapshots.lvs.lvs-operator.io       -           -                    all
plugin    no     patch   lvssnapshots.lvs.lvs-operator.io       status      -                    all
plugin    no     patch   virtualservices.lvs.lvs-operator.io    -           -                    all
plugin    no     create  realservers.lvs.lvs-operator.io        -           -                    all
plugin    no     patch   lvsnodes.lvs.lvs-operator.io           status      -                    all
plugin    no     list    lvsnodeprofiles.lvs.lvs-operator.io    -           -                    all
plugin    no     list    nodes                                  -           -                    all
plugin    no     get     secrets                                -           -                    lvs-system
plugin    no     create  pods                                   -           -                    all
'

scenario rbac t_rbac
t_rbac() {
  ensure_release
  local sa missing=()
  for sa in operator agent; do
    kubectl get serviceaccount "$(lvs_sa "$sa")" -n "$lvs_ns" >/dev/null 2>&1 || missing+=("$lvs_ns/$(lvs_sa "$sa")")
  done
  if ((${#missing[@]})); then
    fail rbac/serviceaccounts "the chart did not create ${missing[*]}"
    return 0
  fi
  pass rbac/serviceaccounts
  rbac_plugin_binding
  kubectl create serviceaccount "$(lvs_sa plugin)" -n "$lvs_ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl create clusterrolebinding rbac-plugin-probe --clusterrole "$lvs_release-lvs-operator-plugin" \
    --serviceaccount "$lvs_ns:$(lvs_sa plugin)" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

  local who expect verb res sub name scope args row got rc table=""
  while read -r who expect verb res sub name scope; do
    [[ -n $who ]] || continue
    args=("$verb")
    if [[ $name == - ]]; then args+=("$res"); else args+=("$res/$name"); fi
    [[ $sub == - ]] || args+=(--subresource "$sub")
    if [[ $scope == all ]]; then args+=(-A); else args+=(-n "$scope"); fi
    row=rbac/$who/$expect/$verb/${res%.lvs.lvs-operator.io}
    [[ $sub == - ]] || row+=/$sub
    [[ $name == - ]] || row+="#$name"
    row+=@$scope
    rc=0; got=$(kubectl auth can-i "${args[@]}" --as "system:serviceaccount:$lvs_ns:$(lvs_sa "$who")" 2>&1) || rc=$?
    table+=$(printf '%-9s %-7s %-4s %s' "$who" "$verb" "$got" "${args[*]:1}")$'\n'
    if [[ $got == "$expect" ]]; then
      pass "$row"
    elif [[ $got == yes || $got == no ]]; then
      fail "$row" "kubectl auth can-i ${args[*]} answered '$got', expected '$expect'"
    else
      fail "$row" "kubectl auth can-i ${args[*]} (exit $rc): $(error_line "$got")"
    fi
  done <<<"$rbac_matrix"
  echo "RBAC matrix as run (sa, verb, answer, resource and scope):"
  printf '%s' "$table"

  kubectl delete clusterrolebinding rbac-plugin-probe --ignore-not-found >/dev/null
  kubectl delete serviceaccount "$(lvs_sa plugin)" -n "$lvs_ns" --ignore-not-found >/dev/null
  rbac_real_tokens
}

# The documents of `helm template` output (stdin) that bind the plugin role.
rbac_plugin_crb() {
  awk -v want="  name: $lvs_release-lvs-operator-plugin" '
    /^---/ { if (crb && named) printf "%s", doc; doc = ""; crb = 0; named = 0; next }
    { doc = doc $0 "\n" }
    /^kind: ClusterRoleBinding$/ { crb = 1 }
    $0 == want { named = 1 }
    END { if (crb && named) printf "%s", doc }'
}

# The plugin ClusterRole is installed; its binding only with
# plugin.rbac.subjects, holding exactly those subjects.
rbac_plugin_binding() {
  local out bound
  if ! kubectl get clusterrole "$lvs_release-lvs-operator-plugin" >/dev/null 2>&1; then
    fail rbac/plugin-role "the chart installed no ClusterRole $lvs_release-lvs-operator-plugin"
  else
    pass rbac/plugin-role
  fi
  if ! out=$(helm template "$lvs_release" "$(lvs_chart)" -n "$lvs_ns" 2>&1); then
    fail rbac/plugin-binding "helm template: $(error_line "$out")"
    return 0
  fi
  if [[ -n $(rbac_plugin_crb <<<"$out") ]]; then
    fail rbac/plugin-binding "a ClusterRoleBinding for the plugin role is rendered without plugin.rbac.subjects"
    return 0
  fi
  if ! out=$(helm template "$lvs_release" "$(lvs_chart)" -n "$lvs_ns" \
    --set 'plugin.rbac.subjects[0].kind=Group' --set 'plugin.rbac.subjects[0].name=lvs-viewers' \
    --set 'plugin.rbac.subjects[0].apiGroup=rbac.authorization.k8s.io' 2>&1); then
    fail rbac/plugin-binding "helm template with plugin.rbac.subjects: $(error_line "$out")"
    return 0
  fi
  # roleRef and subjects, one field a line, sorted.
  bound=$(rbac_plugin_crb <<<"$out" | sed -n '/^roleRef:/,$p' | sed 's/^[ -]*//' | grep -v -e '^roleRef:' -e '^subjects:' | sort | paste -sd';')
  if [[ $bound == "apiGroup: rbac.authorization.k8s.io;apiGroup: rbac.authorization.k8s.io;kind: ClusterRole;kind: Group;name: $lvs_release-lvs-operator-plugin;name: lvs-viewers" ]]; then
    pass rbac/plugin-binding
  else
    fail rbac/plugin-binding "with plugin.rbac.subjects=[Group lvs-viewers] the plugin ClusterRoleBinding is '${bound:-missing}'"
  fi
}

# A few rows again with real tokens (sa-kubeconfig.sh), so authentication and
# authorization are what a running operator or agent would meet.
rbac_real_tokens() {
  local okc=$LVS_LAB_DIR/rbac-operator.kubeconfig akc=$LVS_LAB_DIR/rbac-agent.kubeconfig rc out
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa operator)" "$okc"
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa agent)" "$akc"

  kubectl create namespace rbac-tokens
  kubectl apply -n rbac-tokens -f - <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: rbac-probe}
spec:
  address: 192.0.2.200
  port: 80
  directors: {nodeSelector: {}}
  realServerSelector: {matchLabels: {app: rbac-probe}}
YAML

  # expect_token NAME yes|no KUBECONFIG KUBECTL-ARGS...: "no" must be Forbidden.
  # With api_patch as the first argument, one PATCH request instead of kubectl
  # (which GETs first, a verb the ServiceAccounts do not have).
  expect_token() {
    local n=$1 want=$2 kc=$3
    shift 3
    rc=0
    if [[ $1 == api_patch ]]; then
      out=$(api_patch "$kc" "${@:2}" 2>&1) || rc=$?
    else
      out=$(kubectl --kubeconfig "$kc" "$@" 2>&1) || rc=$?
    fi
    if [[ $want == yes ]] && ((rc == 0)); then
      pass "$n"
    elif [[ $want == yes ]]; then
      fail "$n" "kubectl $*: $(error_line "$out")"
    elif ((rc == 0)); then
      fail "$n" "kubectl $* succeeded, expected Forbidden"
    elif grep -q Forbidden <<<"$out"; then
      pass "$n"
    else
      fail "$n" "kubectl $* failed, but not with Forbidden: $(error_line "$out")"
    fi
  }

  expect_token rbac-token/operator/yes/list/virtualservices@all yes "$okc" get virtualservices.lvs.lvs-operator.io -A
  local vs_path=/apis/lvs.lvs-operator.io/v1alpha1/namespaces/rbac-tokens/virtualservices/rbac-probe
  expect_token rbac-token/operator/yes/patch/virtualservices/status@rbac-tokens yes "$okc" \
    api_patch "$vs_path/status" '{"status":{"endpoint":"192.0.2.200:80/TCP"}}'
  expect_token rbac-token/operator/yes/create/leases#lvs-operator-leader@lvs-system yes "$okc" \
    create -n "$lvs_ns" -f - <<'YAML'
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: lvs-operator-leader}
spec: {holderIdentity: rbac-probe, leaseDurationSeconds: 1}
YAML
  # As the operator writes it: read, then replace with the resourceVersion read.
  expect_token rbac-token/operator/yes/get/leases#lvs-operator-leader@lvs-system yes "$okc" \
    get lease lvs-operator-leader -n "$lvs_ns"
  expect_token rbac-token/operator/yes/update/leases#lvs-operator-leader@lvs-system yes "$okc" \
    replace -f - <<<"$(kubectl get lease lvs-operator-leader -n "$lvs_ns" -o json | jq '.spec.holderIdentity = "rbac-probe-2"')"
  expect_token rbac-token/operator/no/patch/leases#lvs-operator-leader@lvs-system no "$okc" \
    api_patch "/apis/coordination.k8s.io/v1/namespaces/$lvs_ns/leases/lvs-operator-leader" '{"spec":{"holderIdentity":"rbac-probe-3"}}'
  expect_token rbac-token/operator/no/get/virtualservices@rbac-tokens no "$okc" \
    get virtualservice.lvs.lvs-operator.io rbac-probe -n rbac-tokens
  expect_token rbac-token/operator/no/get/secrets@lvs-system no "$okc" get secrets -n "$lvs_ns"
  kubectl get node rbac-probe-node >/dev/null 2>&1 || kubectl create -f - <<'YAML'
apiVersion: v1
kind: Node
metadata: {name: rbac-probe-node}
YAML
  expect_token rbac-token/operator/no/patch/nodes@all no "$okc" label node rbac-probe-node x=y --overwrite
  expect_token rbac-token/agent/no/patch/nodes@all no "$akc" label node rbac-probe-node x=y --overwrite
  expect_token rbac-token/agent/yes/list/nodes@all yes "$akc" get nodes
  expect_token rbac-token/agent/yes/list/realservers@all yes "$akc" get realservers.lvs.lvs-operator.io -A
  expect_token rbac-token/agent/no/patch/virtualservices@rbac-tokens no "$akc" \
    api_patch "$vs_path" '{"spec":{"port":81}}'
  expect_token rbac-token/agent/no/patch/virtualservices/status@rbac-tokens no "$akc" \
    api_patch "$vs_path/status" '{"status":{"endpoint":"forged"}}'
  expect_token rbac-token/agent/no/list/secrets@all no "$akc" get secrets -A
  # Readiness gating: a director lists (and watches) every other node's
  # report (a field selector leaves its own out), but never gets one by name.
  expect_token rbac-token/agent/yes/list/lvsnodes@all yes "$akc" get lvsnodes.lvs.lvs-operator.io
  expect_token rbac-token/agent/yes/list/lvsnodes!=own@all yes "$akc" get lvsnodes.lvs.lvs-operator.io \
    --field-selector metadata.name!=rbac-probe-node
  expect_token rbac-token/agent/no/get/lvsnodes#rbac-probe-node@all no "$akc" get lvsnodes.lvs.lvs-operator.io rbac-probe-node

  # Leave no Lease behind for the operator scenarios to trip over.
  kubectl delete lease lvs-operator-leader -n "$lvs_ns" --ignore-not-found
  kubectl delete node rbac-probe-node --ignore-not-found
  kubectl delete virtualservice.lvs.lvs-operator.io rbac-probe -n rbac-tokens --ignore-not-found --wait=false
}
