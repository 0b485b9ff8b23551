# shellcheck shell=bash
# A LoadBalancer Service of class lvs-operator.io/ipvs, applied with kubectl:
# the operator allocates its address from a pool, makes its VirtualService
# (backends: the Service's EndpointSlices) and writes the address into the
# Service's status; the client reaches the backends through it, and changing
# the endpoints changes the director's destinations.
#
# Backends per lab:
#   joined: the NAT realservers 10.10.0.11-13 (their default route is the
#           director), written as the EndpointSlice of a Service without
#           selector (no controller involved); NAT without source NAT.
#   kind:   real Pods of a Deployment behind a Service with a selector; their
#           replies go through their own node, so NAT with source NAT (the
#           default of LoadBalancer Services), and scaling is `kubectl scale`.
SLB_NS=lvs-lb
SLB_POOL=lb-traffic
SLB_POOL_CIDR=192.0.2.48/28

# slb_base: the namespace and a pool of the examples' VIP network (routed to
# the director), admitting only that namespace.
slb_base() {
  k apply -f - <<YAML || sc_fail "kubectl apply of the namespace and pool failed"
apiVersion: v1
kind: Namespace
metadata: {name: $SLB_NS}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: LvsAddressPool
metadata: {name: $SLB_POOL}
spec:
  addresses: ["$SLB_POOL_CIDR"]
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $SLB_NS}}
YAML
}

# slb_slice ADDR...: the EndpointSlice of Service web (joined), with ADDR:80
# ready.
slb_slice() {
  local eps="" a
  for a in "$@"; do eps+="{\"addresses\":[\"$a\"],\"conditions\":{\"ready\":true}},"; done
  k apply -n "$SLB_NS" -f - <<JSON || sc_fail "kubectl apply of EndpointSlice web-1 failed"
{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
 "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
 "addressType": "IPv4",
 "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
 "endpoints": [${eps%,}]}
JSON
}

# slb_service SOURCE-NAT [SELECTOR-YAML]: Service web, port 8080 -> 80.
slb_service() {
  k apply -n "$SLB_NS" -f - <<YAML || sc_fail "kubectl apply of Service web failed"
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations:
    lvs-operator.io/directors: lvs.lvs-operator.io/director=true
    lvs-operator.io/scheduler: rr
    lvs-operator.io/source-nat: "$1"
spec:
  type: LoadBalancer
  loadBalancerClass: lvs-operator.io/ipvs
  ${2:-}
  ports: [{name: http, port: 8080, targetPort: 80, protocol: TCP}]
YAML
}

# slb_pods N: the Deployment web with N ready Pods (kind).
slb_pods() {
  k apply -n "$SLB_NS" -f - <<YAML || sc_fail "kubectl apply of Deployment web failed"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: $1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: httpd
          image: ${KL_BUSYBOX:-busybox:1.36}
          command: ["sh", "-c", "mkdir -p /www && hostname >/www/index.html && exec httpd -f -p 80 -h /www"]
          ports: [{containerPort: 80}]
          readinessProbe: {tcpSocket: {port: 80}, periodSeconds: 1}
YAML
  k rollout status -n "$SLB_NS" deployment/web --timeout=120s || sc_fail "Deployment web did not become ready"
}

# slb_addrs: the backends' addresses now (the endpoints the Service has).
slb_addrs() {
  k get endpointslices -n "$SLB_NS" -l kubernetes.io/service-name=web -o json |
    jq -r '[.items[].endpoints[]? | select(.conditions.ready != false) | .addresses[0]] | sort | .[]'
}

# _slb_ip: Service web has an address in its status.
_slb_ip() { [[ -n $(k get service web -n "$SLB_NS" -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null) ]]; }
# _slb_endpoints N [ready]: the slices of web list N endpoints (N ready ones).
_slb_endpoints() {
  local sel='.endpoints[]?'
  [[ ${2:-} == ready ]] && sel+=' | select(.conditions.ready != false)'
  (($(k get endpointslices -n "$SLB_NS" -l kubernetes.io/service-name=web -o json | jq "[.items[] | $sel] | length") == $1))
}

# slb_rules VIP ADDR...: the director's expected rules.
slb_rules() {
  local vip=$1 a
  shift
  echo "-A -t $vip:8080 -s rr"
  for a in "$@"; do echo "-a -t $vip:8080 -r $a:80 -m -w 1"; done
}

# slb_expect_even N: the last fetch was spread evenly over N distinct answers.
slb_expect_even() {
  sc_expect_no_errors
  expect_eq "distinct backends answering ($FETCH_SUMMARY)" "$1" "${#FETCH[@]}"
  local b
  for b in "${!FETCH[@]}"; do
    expect_eq "requests answered by $b ($FETCH_SUMMARY)" "$2" "${FETCH[$b]}"
  done
}

scenario service-lb-traffic sc_service_lb_traffic
sc_service_lb_traffic() {
  sc_reset
  local d vip addrs
  d=$(lab_node dir1)
  # Leftovers of an earlier run (the namespace stays: the cluster lab runs no
  # namespace controller, so a deleted namespace would never go).
  k delete service,deployment,endpointslice -n "$SLB_NS" --all --ignore-not-found --wait=true --timeout=90s >/dev/null 2>&1 || true
  slb_base
  if [[ $(lab_name) == kind ]]; then
    slb_service true "selector: {app: web}"
    slb_pods 2
  else
    slb_service false
    slb_slice 10.10.0.11 10.10.0.12
  fi
  sc_retry 60 _slb_ip ||
    sc_fail "Service web got no address within 60 s: $(k get service web -n "$SLB_NS" -o jsonpath='{.status}' 2>&1); events: $(k get events -n "$SLB_NS" --field-selector involvedObject.name=web -o jsonpath='{.items[*].message}' 2>&1)"
  vip=$(k get service web -n "$SLB_NS" -o jsonpath='{.status.loadBalancer.ingress[0].ip}')
  sc_ok "Service web has address $vip"
  [[ $vip == 192.0.2.* ]] || sc_fail "Service web got $vip, outside pool $SLB_POOL ($SLB_POOL_CIDR)"

  mapfile -t addrs < <(slb_addrs)
  slb_rules "$vip" "${addrs[@]}" | sc_wait_ipvs "$d" "-t $vip:8080" 90 || exit 1
  sc_fetch 20 "http://$vip:8080/"
  slb_expect_even 2 10

  # Scale up: a third backend.
  if [[ $(lab_name) == kind ]]; then
    k scale -n "$SLB_NS" deployment/web --replicas 3 || sc_fail "kubectl scale --replicas 3 failed"
    k rollout status -n "$SLB_NS" deployment/web --timeout=120s || sc_fail "Deployment web did not scale to 3"
    sc_retry 60 _slb_endpoints 3 ready ||
      sc_fail "the EndpointSlices of web do not list 3 ready endpoints"
  else
    slb_slice 10.10.0.11 10.10.0.12 10.10.0.13
  fi
  mapfile -t addrs < <(slb_addrs)
  slb_rules "$vip" "${addrs[@]}" | sc_wait_ipvs "$d" "-t $vip:8080" 60 || exit 1
  sc_fetch 30 "http://$vip:8080/"
  slb_expect_even 3 10

  # Scale down to one.
  if [[ $(lab_name) == kind ]]; then
    k scale -n "$SLB_NS" deployment/web --replicas 1 || sc_fail "kubectl scale --replicas 1 failed"
    sc_retry 120 _slb_endpoints 1 ||
      sc_fail "the EndpointSlices of web still list the removed Pods"
  else
    slb_slice 10.10.0.13
  fi
  mapfile -t addrs < <(slb_addrs)
  slb_rules "$vip" "${addrs[@]}" | sc_wait_ipvs "$d" "-t $vip:8080" 60 || exit 1
  sc_fetch 10 "http://$vip:8080/"
  slb_expect_even 1 10

  # Deleting the Service takes its VirtualService, its mirrors and the rules.
  k delete service web -n "$SLB_NS" --wait=true || sc_fail "kubectl delete service web failed"
  sc_wait_ipvs "$d" "-t $vip:8080" 60 </dev/null || exit 1
  k delete deployment,endpointslice -n "$SLB_NS" --all --ignore-not-found --wait=false >/dev/null 2>&1 || true
  k delete lvsaddresspools.lvs.lvs-operator.io "$SLB_POOL" --ignore-not-found >/dev/null 2>&1 || true
}
