# shellcheck shell=bash disable=SC2154
# (lvs_ns and wait_last come from lib.sh)
# LoadBalancer Services and EndpointSlice backends, against the real
# endpointslice controller and garbage collector (the lab's
# kube-controller-manager). There is no kubelet: the scenario writes Pods bound
# to a Node object and sets their status (Running, podIP, Ready) itself. The
# operator (LVS_OPERATOR_BIN, default <repo>/target/debug/lvs-operator) runs
# under the chart's operator ServiceAccount, so the chart's RBAC is what it
# works with.
#
# Addresses come from the scenario's own pool (198.51.100.16/28, namespace
# lvs-svc only), on a range no other scenario uses.

svc_ns=lvs-svc
svc_pool=svc-lab
svc_pool_cidr=198.51.100.16/28

# svc_setup -> the chart, the namespace, the pool, a Node for the Pods and the
# operator (stopped when the scenario's process exits); 1 with the reason in
# $svc_why.
svc_setup() {
  local bin=${LVS_OPERATOR_BIN:-$LVS_REPO/target/debug/lvs-operator}
  [[ -x $bin ]] || { svc_why="$bin is missing (run: make build)"; return 1; }
  ensure_release
  kubectl get namespace "$svc_ns" >/dev/null 2>&1 || kubectl create namespace "$svc_ns"
  kubectl apply -f - <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: LvsAddressPool
metadata: {name: $svc_pool}
spec:
  addresses: ["$svc_pool_cidr"]
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $svc_ns}}
  allowAllDirectors: true
---
apiVersion: v1
kind: Node
metadata: {name: svc-w1}
YAML
  local okc=$LVS_LAB_DIR/svc-operator.kubeconfig port
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$lvs_ns" "$(lvs_sa operator)" "$okc"
  port=$(free_port 18180)
  trap 'stop_proc svc-operator' EXIT
  trap 'exit 143' TERM INT
  start_proc svc-operator env RUST_LOG=info "$bin" --kubeconfig "$okc" --namespace "$lvs_ns" \
    --listen "127.0.0.1:$port" --leader-elect=false --log-format json >/dev/null
  retry 30 curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null ||
    { svc_why="the operator was not ready within 30s: $(tail -n 2 "$LVS_LAB_DIR/svc-operator.log" | tr '\n' ' ')"; return 1; }
}

# svc_pod NAME IP LABEL -> a Pod on svc-w1 with label app=LABEL, Running with
# podIP IP and Ready.
svc_pod() {
  kubectl apply -n "$svc_ns" -f - <<YAML >/dev/null
apiVersion: v1
kind: Pod
metadata: {name: $1, labels: {app: $3}}
spec:
  nodeName: svc-w1
  containers: [{name: web, image: lab.invalid/none, ports: [{containerPort: 8080}]}]
YAML
  svc_ready "$1" True "$2"
}

# svc_ready NAME True|False IP -> set the Pod's status as a kubelet would.
svc_ready() {
  kubectl patch pod "$1" -n "$svc_ns" --subresource status --type merge -p "{\"status\":{\"phase\":\"Running\",\"podIP\":\"$3\",\"podIPs\":[{\"ip\":\"$3\"}],\"conditions\":[{\"type\":\"Ready\",\"status\":\"$2\"}]}}" >/dev/null
}

# svc_in_pool IP -> whether IP lies in $svc_pool_cidr.
svc_in_pool() {
  python3 -c 'import ipaddress, sys; sys.exit(0 if ipaddress.ip_address(sys.argv[1]) in ipaddress.ip_network(sys.argv[2]) else 1)' "$1" "$svc_pool_cidr"
}

# svc_lb_vss SERVICE -> "name=address:port ..." of its VirtualServices, sorted.
svc_lb_vss() {
  kubectl get virtualservices.lvs.lvs-operator.io -n "$svc_ns" -l "lvs.lvs-operator.io/load-balancer=$1" -o json |
    jq -r '[.items[] | "\(.metadata.name)=\(.spec.address):\(.spec.port)"] | sort | join(" ")'
}
_svc_lb_vss_are() { [[ $(svc_lb_vss "$1") == "$2" ]]; }
_svc_no_mirrors() { [[ -z $(svc_mirrors "$1") ]]; }

# svc_mirrors SERVICE -> "address:port=state ..." of the mirror RealServers, sorted.
svc_mirrors() {
  kubectl get realservers.lvs.lvs-operator.io -n "$svc_ns" -l "lvs.lvs-operator.io/service=$1" -o json |
    jq -r '[.items[] | "\(.spec.address):\(.spec.port)=\(.spec.state // "Active")"] | sort | join(" ")'
}

scenario service-lb-allocate t_service_lb_allocate
t_service_lb_allocate() {
  local name=service-lb-allocate svc_why=
  svc_setup || { fail $name "$svc_why"; return 0; }
  kubectl apply -n "$svc_ns" -f - <<YAML
apiVersion: v1
kind: Service
metadata: {name: shop}
spec:
  type: LoadBalancer
  loadBalancerClass: lvs-operator.io/ipvs
  selector: {app: shop}
  ports:
    - {name: http, port: 80, targetPort: 8080}
    - {name: https, port: 443, targetPort: 8443}
---
apiVersion: v1
kind: Service
metadata: {name: elsewhere}
spec:
  type: LoadBalancer
  loadBalancerClass: example.com/other
  selector: {app: shop}
  ports: [{port: 80, targetPort: 8080}]
YAML
  if ! wait_json 30 '(.status.loadBalancer.ingress // []) | length == 1' service shop -n "$svc_ns"; then
    fail $name "Service shop got no status.loadBalancer.ingress within 30s: $(jq -c .status <<<"$wait_last" 2>/dev/null || first_line "$wait_last")"
    return 0
  fi
  local ip
  ip=$(jq -r '.status.loadBalancer.ingress[0].ip' <<<"$wait_last")
  svc_in_pool "$ip" || { fail $name "Service shop got $ip, outside pool $svc_pool ($svc_pool_cidr)"; return 0; }
  local want="shop-443-tcp=$ip:443 shop-80-tcp=$ip:80"
  if ! retry 30 _svc_lb_vss_are shop "$want"; then
    fail $name "expected VirtualServices $want, got: $(kubectl get virtualservices.lvs.lvs-operator.io -n "$svc_ns" -o json | jq -c '[.items[] | {n: .metadata.name, a: .spec.address, p: .spec.port, o: .metadata.ownerReferences[0].name}]')"
    return 0
  fi
  # The other class is left alone: no address, no VirtualService, no field
  # written by the operator.
  local other
  other=$(kubectl get service elsewhere -n "$svc_ns" -o json)
  if [[ $(jq -c '.status.loadBalancer.ingress // []' <<<"$other") != "[]" ]] ||
    jq -e '[.metadata.managedFields[]?.manager] | index("lvs-operator")' <<<"$other" >/dev/null ||
    [[ -n $(svc_lb_vss elsewhere) ]]; then
    fail $name "Service elsewhere (class example.com/other) was touched: status $(jq -c .status <<<"$other"), managers $(jq -c '[.metadata.managedFields[]?.manager]' <<<"$other")"
    return 0
  fi
  # Deleting the Service removes its VirtualServices (garbage collection of
  # the ownerReferences).
  kubectl delete service shop -n "$svc_ns" --wait=false
  if ! retry 60 _svc_lb_vss_are shop ""; then
    fail $name "60s after deleting Service shop its VirtualServices remain: $(kubectl get virtualservices.lvs.lvs-operator.io -n "$svc_ns" -o name | tr '\n' ' ')"
    return 0
  fi
  kubectl delete service elsewhere -n "$svc_ns" --wait=false
  echo "shop got $ip; VirtualServices $want; gone after the Service was deleted"
  pass $name
}

scenario endpointslice-backends t_endpointslice_backends
t_endpointslice_backends() {
  local name=endpointslice-backends svc_why=
  svc_setup || { fail $name "$svc_why"; return 0; }
  # A ClusterIP Service with a selector: the endpointslice controller writes
  # its slices from the Pods; a VirtualService takes them as backends.
  kubectl apply -n "$svc_ns" -f - <<YAML
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: api}
spec:
  address: 198.51.100.30
  port: 80
  directors: {nodeSelector: {}}
  backends: {service: {name: api, port: http}}
YAML
  svc_pod api-1 10.244.1.1 api
  svc_pod api-2 10.244.1.2 api
  # mirrors WANT -> wait until the mirror RealServers are WANT and the
  # VirtualService selects them ("ready/selected" in its status).
  local got
  mirrors() {
    local want=$1 summary=$2 deadline=$((SECONDS + 30))
    while :; do
      got="$(svc_mirrors api) | $(kubectl get virtualservices.lvs.lvs-operator.io api -n "$svc_ns" -o jsonpath='{.status.realServers.summary}')"
      [[ $got == "$want | $summary" ]] && return 0
      ((SECONDS < deadline)) || return 1
      sleep 1
    done
  }
  local bad=()
  mirrors "10.244.1.1:8080=Active 10.244.1.2:8080=Active" 2/2 ||
    bad+=("two ready Pods: expected both Active and 2/2 selected, got '$got'")
  svc_ready api-2 False 10.244.1.2
  mirrors "10.244.1.1:8080=Active" 1/1 ||
    bad+=("api-2 unready: expected it gone, got '$got'")
  svc_ready api-2 True 10.244.1.2
  mirrors "10.244.1.1:8080=Active 10.244.1.2:8080=Active" 2/2 ||
    bad+=("api-2 ready again: expected it back, got '$got'")
  # Deleting a Pod bound to a Node waits for its kubelet: the endpoint stays,
  # terminating, and its RealServer drains.
  kubectl delete pod api-1 -n "$svc_ns" --wait=false
  mirrors "10.244.1.1:8080=Draining 10.244.1.2:8080=Active" 2/2 ||
    bad+=("api-1 terminating: expected it Draining, got '$got'")
  kubectl delete pod api-1 -n "$svc_ns" --grace-period=0 --force
  mirrors "10.244.1.2:8080=Active" 1/1 ||
    bad+=("api-1 gone: expected its RealServer deleted, got '$got'")
  local backends
  backends=$(kubectl get virtualservices.lvs.lvs-operator.io api -n "$svc_ns" -o json | jq -c '.status.backends')
  [[ $(jq -c '[.service, .port, .ready, .terminating, .endpoints]' <<<"$backends") == '["api","http",1,0,["10.244.1.2:8080"]]' ]] ||
    bad+=("status.backends: expected service api, port http, 1 ready, 0 terminating, [10.244.1.2:8080]; got $backends")
  # A VirtualService naming a Service that does not exist says so.
  kubectl apply -n "$svc_ns" -f - <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: nowhere}
spec:
  address: 198.51.100.31
  port: 80
  directors: {nodeSelector: {}}
  backends: {service: {name: nope}}
YAML
  wait_json 30 '.status.backends.message == "Service '"$svc_ns"'/nope not found" and
      ([.status.conditions[]? | select(.type == "Ready" and .status == "False" and (.message | contains("spec.backends: Service '"$svc_ns"'/nope")))] | length == 1)' \
    virtualservices.lvs.lvs-operator.io nowhere -n "$svc_ns" ||
    bad+=("VirtualService nowhere (Service nope missing): expected status.backends.message 'Service $svc_ns/nope not found' and Ready=False naming spec.backends; got $(jq -c '[.status.backends, [.status.conditions[]? | select(.type == "Ready")]]' <<<"$wait_last" 2>/dev/null || first_line "$wait_last")")
  kubectl delete virtualservices.lvs.lvs-operator.io api nowhere -n "$svc_ns"
  retry 30 _svc_no_mirrors api ||
    bad+=("the mirrors remain 30s after the last VirtualService naming Service api was deleted")
  kubectl delete service api -n "$svc_ns" --wait=false
  kubectl delete pod api-2 -n "$svc_ns" --grace-period=0 --force
  if ((${#bad[@]})); then
    fail $name "$(printf '%s; ' "${bad[@]}")"
  else
    pass $name
  fi
}
