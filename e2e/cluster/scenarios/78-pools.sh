# Address pools and tenant isolation against the real API server: the chart's
# ValidatingAdmissionPolicy (CEL IP/CIDR library, the pool as its parameter,
# reading the index the operator writes into every pool), the operator's
# AddressNotAllowed condition and pool status, and an agent (Kubernetes mode,
# fake dataplane; it watches the pools and the namespaces' labels) that refuses a VIP the pools refuse even when admission was
# bypassed, reporting it in its LvsNode (status.refused).
#
# Tenancy ranges (the lab pool of e2e/lib/lab-pool-values.yaml does not
# cover them): 203.0.113.0/28 for namespace pl-a only, 203.0.113.64/28 for
# pl-a and pl-b, not shared. The node pl-n1 has the address 203.0.113.5.
#
#   LVS_AGENT_BIN     the agent (default <repo>/target/debug/node-agent)
#   LVS_OPERATOR_BIN  the operator (default <repo>/target/debug/lvs-operator)

pl_vs=virtualservices.lvs.lvs-operator.io
pl_pool=lvsaddresspools.lvs.lvs-operator.io
pl_ln=lvsnodes.lvs.lvs-operator.io
pl_policy() { echo "$lvs_release-lvs-operator-address-pools"; }

# pl_vs_json NS NAME VIP [NODE-SELECTOR-JSON] -> a VirtualService manifest.
# VIP "mark:A,B" makes it a fwmark service marking TCP to A and B.
pl_vs_json() {
  local sel=${4:-'{"matchLabels":{"pl-director":"true"}}'} key
  if [[ $3 == mark:* ]]; then
    key=$(jq -cn --arg a "${3#mark:}" '{fwmark: 7, fwmarkMatch: {addresses: ($a | split(",")), protocol: "TCP"}}')
  else
    key=$(jq -cn --arg a "$3" '{address: $a, port: 80, protocol: "TCP"}')
  fi
  printf '{"apiVersion":"lvs.lvs-operator.io/v1alpha1","kind":"VirtualService","metadata":{"name":"%s","namespace":"%s"},"spec":%s}' \
    "$2" "$1" "$(jq -c --argjson sel "$sel" '. + {directors: {nodeSelector: $sel}, realServerSelector: {matchLabels: {app: "pl"}}}' <<<"$key")"
}

# pl_try NS NAME VIP [SELECTOR] -> a server-side dry run of the create; prints
# kubectl's output, fails when the API server refused.
pl_try() {
  kubectl create --dry-run=server -f - <<<"$(pl_vs_json "$@")" 2>&1
}

# pl_wait SECONDS JQ KUBECTL-GET-ARGS... -> poll until JQ holds; last JSON in $pl_last.
pl_wait() {
  local timeout=$1 expr=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    pl_last=$(kubectl get -o json "$@" 2>&1) || true
    jq -e "$expr" <<<"$pl_last" >/dev/null 2>&1 && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# pl_problems collects failed checks; pl_report NAME passes or fails NAME once.
pl_problems=()
pl_problem() { pl_problems+=("$1"); }
pl_report() {
  if ((${#pl_problems[@]})); then
    fail "$1" "$(printf '%s; ' "${pl_problems[@]}")"
  else
    pass "$1"
  fi
  pl_problems=()
}

# pl_expect_refused WHAT PATTERN NS NAME VIP [SELECTOR] -> the create is refused
# with a message matching PATTERN (extended regex).
pl_expect_refused() {
  local what=$1 pattern=$2 out
  shift 2
  if out=$(pl_try "$@"); then
    pl_problem "$what: accepted, expected a refusal"
  elif ! grep -qE "$pattern" <<<"$out"; then
    pl_problem "$what: refused, but the message does not match /$pattern/: $(first_line "$out")"
  else
    echo "$what: refused as expected: $(first_line "$out")"
  fi
}

pl_expect_accepted() {
  local what=$1 out
  shift
  out=$(pl_try "$@") || pl_problem "$what: refused: $(first_line "$out")"
}

# pl_setup -> the release with the lab pool, the tenancy namespaces, pools and
# node, and a running operator whose index covers the tenancy pools, and an
# admission policy that is in force. Returns 1 (after a fail) when it cannot.
pl_setup() {
  local name=$1
  pl_op_bin=${LVS_OPERATOR_BIN:-$LVS_REPO/target/debug/lvs-operator}
  pl_ag_bin=${LVS_AGENT_BIN:-$LVS_REPO/target/debug/node-agent}
  if [[ ! -x $pl_op_bin || ! -x $pl_ag_bin ]]; then
    fail "$name" "$pl_op_bin or $pl_ag_bin is missing (run: cargo build -p lvs-operator -p lvs-node-agent)"
    return 1
  fi
  ensure_release
  kubectl delete lease lvs-operator-leader -n "$lvs_ns" --ignore-not-found
  local ns
  for ns in a b c; do
    kubectl create namespace "pl-$ns" 2>/dev/null || true
    kubectl label namespace "pl-$ns" --overwrite "tenant=$ns"
  done
  kubectl apply -f - <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: LvsAddressPool
metadata: {name: pl-tenant-a}
spec:
  addresses: [203.0.113.0/28]
  namespaceSelector: {matchLabels: {tenant: a}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: LvsAddressPool
metadata: {name: pl-a-and-b}
spec:
  addresses: [203.0.113.64-203.0.113.79]
  namespaceSelector: {matchExpressions: [{key: tenant, operator: In, values: [a, b]}]}
  allowAllDirectors: true
YAML
  kubectl get node pl-n1 >/dev/null 2>&1 ||
    kubectl create -f - <<<'{"apiVersion":"v1","kind":"Node","metadata":{"name":"pl-n1","labels":{"pl-director":"true"}}}'
  kubectl patch node pl-n1 --subresource status --type merge \
    -p '{"status":{"addresses":[{"type":"InternalIP","address":"203.0.113.5"}]}}'

  local okc=$LVS_LAB_DIR/operator-78.kubeconfig port
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa operator)" "$okc"
  port=$(free_port 18280)
  start_proc pools-operator env POD_NAME=op-78 RUST_LOG=info "$pl_op_bin" --kubeconfig "$okc" \
    --namespace "$lvs_ns" --listen "127.0.0.1:$port" --log-format json >/dev/null
  # Every pool carries the index with the tenancy pools and the node's address.
  if ! pl_wait 60 '[.items[] | .status.index // {} |
      ([.pools[]?.name] | index("pl-a-and-b") != null) and (.deniedAddresses // [] | index("203.0.113.5") != null)] |
      length > 0 and all' "$pl_pool"; then
    fail "$name" "the operator wrote no index with the tenancy pools and node pl-n1's address within 60s: $(jq -c '[.items[]? | {name: .metadata.name, status}]' <<<"$pl_last" 2>/dev/null | head -c 600) (log: $LVS_LAB_DIR/pools-operator.log)"
    return 1
  fi
  # The policy is compiled asynchronously: wait until it refuses a VIP
  # outside every pool.
  if ! retry 30 bash -c '! out=$(kubectl create --dry-run=server -f - <<<"$1" 2>&1) && grep -q "lies in no LvsAddressPool" <<<"$out"' \
    _ "$(pl_vs_json pl-a pl-probe 203.0.112.1)"; then
    fail "$name" "the ValidatingAdmissionPolicy $(pl_policy) did not refuse a VIP outside every pool within 30s: $(first_line "$(pl_try pl-a pl-probe 203.0.112.1)")"
    return 1
  fi
}

scenario pool-admission t_pool_admission
t_pool_admission() {
  trap 'stop_proc pools-operator' EXIT
  trap 'exit 143' TERM INT
  pl_setup pool-admission || return 0
  pl_expect_accepted "pl-a in its own pool" pl-a web 203.0.113.1
  pl_expect_accepted "pl-b in the pool of pl-a and pl-b" pl-b web 203.0.113.70
  pl_expect_accepted "pl-c in the shared lab pool" pl-c web 192.0.2.77
  pl_expect_refused "pl-b in pl-a's pool" \
    'LvsAddressPool pl-tenant-a, which does not admit namespace pl-b' pl-b web 203.0.113.1
  pl_expect_refused "outside every pool" \
    'lies in no LvsAddressPool \(pools: .*pl-a-and-b.*pl-tenant-a' pl-a web 203.0.112.1
  pl_expect_refused "every node a director where the pool does not allow it" \
    'does not allow all directors.*LvsAddressPool pl-tenant-a|LvsAddressPool pl-tenant-a does not allow all directors' \
    pl-a web 203.0.113.2 '{}'
  pl_expect_accepted "every node a director where the pool allows it" pl-a web 203.0.113.66 '{}'
  # A fwmark service's match addresses are VIPs too: each is judged.
  pl_expect_accepted "pl-a marking two addresses of its pools" pl-a mark 'mark:203.0.113.1,203.0.113.70'
  pl_expect_refused "pl-b marking an address of pl-a's pool" \
    'spec.fwmarkMatch.addresses: 203.0.113.1 lies in LvsAddressPool pl-tenant-a, which does not admit namespace pl-b' \
    pl-b mark 'mark:203.0.113.70,203.0.113.1'
  pl_expect_refused "marking a node's address" \
    'spec.fwmarkMatch.addresses: 203.0.113.5 is a node or API server address' pl-a mark 'mark:203.0.113.5'
  # The operator's own verdict for an object the policy never saw (created
  # while no pool admitted it is impossible now; a pool change is not): pl-c
  # takes 203.0.113.3 under a pool that admits it, then the pool stops
  # admitting it.
  kubectl apply -f - <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: LvsAddressPool
metadata: {name: pl-c-only}
spec:
  addresses: [203.0.113.96/28]
  namespaceSelector: {matchLabels: {tenant: c}}
YAML
  if ! pl_wait 30 '[.items[] | .status.index.pools // [] | map(.name) | index("pl-c-only") != null] | all' "$pl_pool"; then
    pl_problem "the index never listed pool pl-c-only"
  elif ! retry 20 bash -c 'kubectl apply -f - <<<"$1"' _ "$(pl_vs_json pl-c moved 203.0.113.97)"; then
    pl_problem "pl-c could not create a VirtualService in its pool pl-c-only"
  else
    kubectl label namespace pl-c --overwrite tenant=gone
    if ! pl_wait 30 '[.status.conditions[]? | select(.type == "AddressNotAllowed" and .status == "True" and .reason == "NamespaceNotAdmitted")] | length == 1' "$pl_vs" moved -n pl-c; then
      pl_problem "after pl-c lost its label, VirtualService pl-c/moved has no AddressNotAllowed=True/NamespaceNotAdmitted: $(jq -c '[.status.conditions[]? | {type, status, reason, message}]' <<<"$pl_last" 2>/dev/null)"
    elif ! jq -e '[.status.conditions[] | select(.type == "AddressNotAllowed")][0].message | test("LvsAddressPool pl-c-only, which does not admit namespace pl-c")' <<<"$pl_last" >/dev/null; then
      pl_problem "the AddressNotAllowed message does not name the pool: $(jq -c '[.status.conditions[] | select(.type == "AddressNotAllowed")][0].message' <<<"$pl_last")"
    fi
    kubectl label namespace pl-c --overwrite tenant=c
    kubectl delete "$pl_vs" moved -n pl-c --ignore-not-found
  fi
  kubectl delete "$pl_pool" pl-c-only --ignore-not-found
  pl_report pool-admission
}

scenario vip-denylist t_vip_denylist
t_vip_denylist() {
  trap 'stop_proc pools-operator' EXIT
  trap 'exit 143' TERM INT
  pl_setup vip-denylist || return 0
  # A pool for pl-c that contains every address below: the deny list wins.
  local cluster_ip eps=() a
  cluster_ip=$(kubectl get service kubernetes -n default -o jsonpath='{.spec.clusterIP}')
  mapfile -t eps < <(kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes \
    -o jsonpath='{range .items[*].endpoints[*]}{.addresses[0]}{"\n"}{end}' | grep -v '^$' || true)
  local addrs=("203.0.113.5" "$cluster_ip" "127.0.0.1" "169.254.169.254" "224.0.0.1" "${eps[@]}")
  local list
  list=$(printf '"%s/32",' "${addrs[@]}")
  kubectl apply -f - <<<"{\"apiVersion\":\"lvs.lvs-operator.io/v1alpha1\",\"kind\":\"LvsAddressPool\",\"metadata\":{\"name\":\"pl-deny-probe\"},\"spec\":{\"addresses\":[${list%,}],\"namespaceSelector\":{\"matchLabels\":{\"tenant\":\"c\"}},\"shared\":true,\"allowAllDirectors\":true}}"
  if ! pl_wait 30 "[.items[] | (.status.index.pools // [] | map(.name) | index(\"pl-deny-probe\") != null)
      and (.status.index.deniedAddresses // [] | index(\"$cluster_ip\") != null)] | all" "$pl_pool"; then
    pl_problem "the index never listed pool pl-deny-probe with the kubernetes ClusterIP $cluster_ip denied: $(jq -c '.items[0].status.index.deniedAddresses' <<<"$pl_last" 2>/dev/null)"
  fi
  echo "kubernetes Service: ClusterIP $cluster_ip, endpoints ${eps[*]:-(none)}"
  pl_expect_refused "node pl-n1's address" 'node or API server address' pl-c deny 203.0.113.5
  pl_expect_refused "the kubernetes ClusterIP" 'node or API server address' pl-c deny "$cluster_ip"
  for a in "${eps[@]}"; do
    [[ $a == 127.* ]] && continue # loopback: refused by the CRD below
    pl_expect_refused "the API server endpoint $a" 'node or API server address' pl-c deny "$a"
  done
  pl_expect_refused "loopback" 'loopback|127\.0\.0\.1' pl-c deny 127.0.0.1
  pl_expect_refused "link-local (cloud metadata)" 'link-local|169\.254' pl-c deny 169.254.169.254
  pl_expect_refused "multicast" 'multicast' pl-c deny 224.0.0.1
  kubectl delete "$pl_pool" pl-deny-probe --ignore-not-found
  pl_report vip-denylist
}

# pl_cond NS NAME TYPE -> "status/reason: message" of a VirtualService condition.
pl_cond() {
  kubectl get "$pl_vs" "$2" -n "$1" -o json 2>/dev/null |
    jq -r --arg t "$3" '[.status.conditions[]? | select(.type == $t)][0] | "\(.status)/\(.reason): \(.message)"' 2>/dev/null
}

scenario vip-tenant-isolation t_vip_tenant_isolation
t_vip_tenant_isolation() {
  trap 'stop_proc pools-operator; stop_proc pools-agent' EXIT
  trap 'exit 143' TERM INT
  pl_setup vip-tenant-isolation || return 0
  local vip=203.0.113.70 port binding_json
  # An agent directing everything the pl-director label selects: pl-n1.
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" --bind-node pl-n1 "$lvs_ns" "$(lvs_sa agent)" "$LVS_LAB_DIR/agent-pl-n1.kubeconfig"
  port=$(free_port 19577)
  start_proc pools-agent env RUST_LOG=info "$pl_ag_bin" --kubeconfig "$LVS_LAB_DIR/agent-pl-n1.kubeconfig" \
    --node-name pl-n1 --dataplane fake --node-ip 203.0.113.5 \
    --listen "127.0.0.1:$port" --resync-interval 2 --log-format json >/dev/null

  # pl-a takes the address first.
  kubectl delete "$pl_vs" --all -n pl-a --ignore-not-found
  kubectl delete "$pl_vs" --all -n pl-b --ignore-not-found
  local out
  if ! out=$(kubectl apply -f - <<<"$(pl_vs_json pl-a holder $vip)" 2>&1); then
    pl_problem "pl-a could not take $vip: $(first_line "$out")"
    pl_report vip-tenant-isolation
    return 0
  fi
  if ! pl_wait 30 "[.items[] | .status.index.owners // [] | map(select(.address == \"$vip\" and .namespace == \"pl-a\")) | length == 1] | all" "$pl_pool"; then
    pl_problem "the index never named pl-a the owner of $vip: $(jq -c '.items[0].status.index.owners' <<<"$pl_last" 2>/dev/null)"
  fi
  # B cannot take it at admission.
  pl_expect_refused "pl-b taking pl-a's address" "held by namespace pl-a" pl-b squatter $vip

  # Admission bypassed: the binding goes, pl-b writes the object, the binding
  # comes back (an object written before the policy existed).
  binding_json=$(kubectl get validatingadmissionpolicybinding "$(pl_policy)" -o json |
    jq -c 'del(.metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp, .metadata.generation, .metadata.managedFields, .status)')
  kubectl delete validatingadmissionpolicybinding "$(pl_policy)"
  if ! retry 20 bash -c 'kubectl apply -f - <<<"$1"' _ "$(pl_vs_json pl-b squatter $vip)"; then
    pl_problem "with the binding removed, pl-b still could not write pl-b/squatter"
  fi
  kubectl apply -f - <<<"$binding_json"

  # The operator refuses it ...
  if ! pl_wait 30 '[.status.conditions[]? | select(.type == "AddressNotAllowed" and .status == "True" and .reason == "AddressHeld")] | length == 1' "$pl_vs" squatter -n pl-b; then
    pl_problem "operator: pl-b/squatter is not AddressNotAllowed=True/AddressHeld: $(pl_cond pl-b squatter AddressNotAllowed)"
  fi
  # ... and so does the agent, which programs pl-a's service only.
  if ! pl_wait 30 '(.status.refused // [] | map(select(startswith("pl-b/squatter: ") and test("held by namespace pl-a"))) | length == 1)
      and (.status.services // [] | map(.name) | (index("pl-a/holder") != null and index("pl-b/squatter") == null))' "$pl_ln" pl-n1; then
    pl_problem "agent: LvsNode pl-n1 does not refuse pl-b/squatter while programming pl-a/holder: $(jq -c '{refused: .status.refused, services: [.status.services[]?.name]}' <<<"$pl_last" 2>/dev/null || first_line "$pl_last") (log: $LVS_LAB_DIR/pools-agent.log)"
  fi

  # pl-a lets go: pl-b's object, written while pl-a held the address, does
  # not inherit it; the address stays reserved for pl-a.
  kubectl delete "$pl_vs" holder -n pl-a --wait
  if ! pl_wait 30 "[.items[] | .status.index.owners // [] | map(select(.address == \"$vip\" and .namespace == \"pl-a\" and (.released // \"\") != \"\")) | length == 1] | all" "$pl_pool"; then
    pl_problem "after pl-a/holder went, the index does not keep $vip reserved for pl-a (released): $(jq -c '.items[0].status.index.owners' <<<"$pl_last" 2>/dev/null)"
  fi
  if [[ $(pl_cond pl-b squatter AddressNotAllowed) != True/AddressHeld:* ]]; then
    pl_problem "pl-b/squatter inherited the address: AddressNotAllowed is $(pl_cond pl-b squatter AddressNotAllowed)"
  fi
  if ! pl_wait 30 '(.status.refused // [] | map(select(startswith("pl-b/squatter: "))) | length == 1)
      and (.status.services // [] | map(.name) | index("pl-b/squatter") == null)' "$pl_ln" pl-n1; then
    pl_problem "agent: after pl-a let go, LvsNode pl-n1 programs or stops refusing pl-b/squatter: $(jq -c '{refused: .status.refused, services: [.status.services[]?.name]}' <<<"$pl_last" 2>/dev/null)"
  fi

  # Recreated, it may take the address (once the stale object is gone).
  kubectl delete "$pl_vs" squatter -n pl-b --wait
  if ! pl_wait 30 "[.items[] | .status.index.owners // [] | map(select(.address == \"$vip\")) | length == 0] | all" "$pl_pool"; then
    pl_problem "the reservation of $vip did not end once pl-b/squatter was gone: $(jq -c '.items[0].status.index.owners' <<<"$pl_last" 2>/dev/null)"
  elif ! retry 20 bash -c 'kubectl apply -f - <<<"$1"' _ "$(pl_vs_json pl-b recreated $vip)"; then
    pl_problem "pl-b could not create pl-b/recreated on the free address $vip: $(first_line "$(pl_try pl-b recreated2 $vip)")"
  elif ! pl_wait 30 '.status.services // [] | map(.name) | index("pl-b/recreated") != null' "$pl_ln" pl-n1; then
    pl_problem "agent: pl-b/recreated is not programmed on pl-n1: $(jq -c '{refused: .status.refused, services: [.status.services[]?.name]}' <<<"$pl_last" 2>/dev/null)"
  elif ! pl_wait 30 '[.status.conditions[]? | select(.type == "AddressNotAllowed" and .status == "False")] | length == 1' "$pl_vs" recreated -n pl-b; then
    pl_problem "operator: pl-b/recreated is AddressNotAllowed $(pl_cond pl-b recreated AddressNotAllowed)"
  fi
  kubectl delete "$pl_vs" --all -n pl-b --ignore-not-found
  pl_report vip-tenant-isolation
}
