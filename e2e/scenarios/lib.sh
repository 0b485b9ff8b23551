# Shared end-to-end scenario helpers (bash), used by every lab that runs the
# scenarios in this directory (e2e/joined: qemu VM + host API server;
# e2e/kind: a kind cluster). Scenarios talk to the lab only through the lab
# API below, which each lab implements in its own lab-api.sh:
#
#   lab_name                        "joined" or "kind"
#   lab_kubectl ARG...              kubectl against the lab (cluster admin)
#   in_node NODE CMD [ARG...]       run CMD in NODE's network namespace; NODE
#                                   is a lab node name or "client" (where the
#                                   traffic comes from). Output and status are
#                                   CMD's. No stdin.
#   in_node_stdin NODE CMD [ARG...] the same, with our stdin forwarded
#   lab_node NAME                   the lab's node for a node name in
#                                   examples/*.yaml (dir1, rs1, rs2, rs4, rs5)
#   lab_node_ip NODE                the node's InternalIP
#   lab_answer NAME                 the body that realserver NAME serves (rs1..rs5)
#   lab_manifest EXAMPLE            the file to apply for examples/EXAMPLE.yaml
#   lab_agent_kill NODE             SIGKILL the node agent on NODE; the lab
#                                   restarts it (kubelet, or the VM's supervisor)
#   lab_agent_starts NODE           a number that grows each time NODE's agent starts
#   lab_agent_metrics NODE          the agent's /metrics text
#   lab_agent_readyz NODE           0 when the agent answers /readyz with 200
#   lab_apiserver_stop, lab_apiserver_start
#   lab_arp_peer                    "NODE IFACE": where to arping the directors'
#                                   segment from (a neighbour that is no realserver)
#   lab_has FEATURE                 0 when the lab supports FEATURE
#                                   (apiserver-restart; ha: the functions below;
#                                   snat: realservers rs4, rs5 route around the
#                                   director and the nodes have nft;
#                                   metrics-scrape: lab_metrics_targets;
#                                   plugin: lab_plugin)
#   lab_metrics_targets             "JOB NAME HOST:PORT" per agent (job lvs-agent)
#                                   and operator (job lvs-operator): their
#                                   /metrics as a Prometheus on the host reaches them
#   lab_plugin ARG...               `kubectl lvs ARG...` as a user bound only to
#                                   the chart's plugin ClusterRole (only where
#                                   lab_has plugin)
#   Director HA (90-ha.sh, only where lab_has ha):
#   lab_directors                   the two director nodes
#   lab_ha_on NODE...               NODE's agent runs with director HA on
#   lab_ha_state NODE               the agent's GET /ha answer
#   lab_agent_hold NODE on|off      a dead agent on NODE is not restarted (until off)
#   lab_node_links NODE up|down     all of NODE's links
#   lab_node_api NODE cut|restore   NODE alone loses its path to the API server
#   lab_node_mac NODE               the MAC of NODE's lan interface
#
# Each client has busybox sh, wget, nc and timeout; each node has ip,
# ipvsadm, sh, sort, grep and cat; realservers serve their name on :80.
# shellcheck shell=bash disable=SC2034,SC2120
# shellcheck source=../lib/common.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/../lib/common.sh"

# --- the examples' objects -----------------------------------------------------
VIP_NAT=192.0.2.10
VIP_DR=192.0.2.20
VIP_TUN=192.0.2.30
SVC_NAT="-t $VIP_NAT:8080"
SVC_DR="-t $VIP_DR:80"
SVC_TUN="-t $VIP_TUN:80"
URL_NAT="http://$VIP_NAT:8080/"
URL_DR="http://$VIP_DR/"
URL_TUN="http://$VIP_TUN/"
# NAT realservers by address (examples/nat.yaml), in RealServer order.
NAT_RS_ADDRS=(10.10.0.11 10.10.0.12 10.10.0.13)
VS_GROUP=virtualservices.lvs.lvs-operator.io
RS_GROUP=realservers.lvs.lvs-operator.io

k() { lab_kubectl "$@"; }

# --- outcome --------------------------------------------------------------------
# A scenario function runs in its own subshell; sc_fail ends it with a reason
# (shown on the FAIL line). Anything it prints goes to its log.
sc_fail() {
  echo "FAIL: $*"
  printf '%s\n' "$*" >"${RUNNER_WHY_FILE:-/dev/null}"
  exit 1
}
sc_ok() { echo "ok: $*"; }
# sc_info TEXT: a figure for the suite's output (an INFO line, not a check).
sc_info() {
  echo "INFO: $*"
  printf '%s\n' "$*" >>"${RUNNER_INFO_FILE:-/dev/null}"
}
expect_eq() {
  [[ $2 == "$3" ]] || sc_fail "$1: expected '$2', got '$3'"
  sc_ok "$1 = '$3'"
}
sc_now_ms() { date +%s%3N; }

# sc_retry SECS CMD...: run CMD until it succeeds, at most SECS seconds.
sc_retry() { lvs_retry "$@"; }

# --- objects ------------------------------------------------------------------------
sc_apply() { k apply -f "$(lab_manifest "$1")" || sc_fail "kubectl apply -f examples/$1.yaml failed"; }
sc_delete() { k delete -f "$(lab_manifest "$1")" --ignore-not-found --wait=true --timeout=90s || sc_fail "kubectl delete -f examples/$1.yaml failed"; }

# sc_vs_yaml NAME VIP PORT FORWARDING APP DIRECTOR-LABEL [SPEC-LINE...]: a
# VirtualService NAME (namespace default) on VIP:PORT/TCP, rr, FORWARDING, on
# the nodes labelled DIRECTOR-LABEL (key=value), selecting the RealServers
# labelled app=APP; each SPEC-LINE (e.g. "sourceNat: true") is added to its
# spec. Ends with "---".
sc_vs_yaml() {
  local name=$1 vip=$2 port=$3 fwd=$4 app=$5 label=$6 l
  shift 6
  printf '%s\n' "apiVersion: lvs.lvs-operator.io/v1alpha1" "kind: VirtualService" \
    "metadata: {name: $name, namespace: default}" "spec:" "  address: $vip" "  port: $port" \
    "  protocol: TCP" "  scheduler: rr" "  forwarding: $fwd" \
    "  directors: {nodeSelector: {matchLabels: {${label%%=*}: \"${label#*=}\"}}}" \
    "  realServerSelector: {matchLabels: {app: $app}}"
  for l in "$@"; do echo "  $l"; done
  echo "---"
}
# sc_rs_yaml NAME APP SPEC: a RealServer NAME (namespace default) labelled
# app=APP with SPEC (a flow mapping). Ends with "---".
sc_rs_yaml() {
  printf '%s\n' "apiVersion: lvs.lvs-operator.io/v1alpha1" "kind: RealServer" \
    "metadata: {name: $1, namespace: default, labels: {app: $2}}" "spec: $3" "---"
}

# sc_vs_field NAME JSONPATH: one field of VirtualService NAME (namespace default).
sc_vs_field() { k get "$VS_GROUP" "$1" -n default -o "jsonpath=$2" 2>/dev/null; }
sc_vs_cond() { sc_vs_field "$1" "{.status.conditions[?(@.type==\"$2\")].status}"; }

# sc_vs_state NAME: "Ready=.. Programmed=.. ready=N/M current=yes|no" of NAME.
sc_vs_state() {
  local gen obs
  gen=$(sc_vs_field "$1" '{.metadata.generation}')
  obs=$(sc_vs_field "$1" '{.status.observedGeneration}')
  printf 'Ready=%s Programmed=%s ready=%s/%s current=%s' \
    "$(sc_vs_cond "$1" Ready)" "$(sc_vs_cond "$1" Programmed)" \
    "$(sc_vs_field "$1" '{.status.realServers.ready}')" "$(sc_vs_field "$1" '{.status.realServers.selected}')" \
    "$([[ -n $gen && $gen == "$obs" ]] && echo yes || echo no)"
}

# sc_wait_vs NAME READY SECS: wait until VirtualService NAME is Ready=True and
# Programmed=True for its current generation with READY ready realservers.
sc_wait_vs() {
  local want="Ready=True Programmed=True ready=$2/$2 current=yes" got deadline=$((SECONDS + $3))
  while :; do
    got=$(sc_vs_state "$1")
    [[ $got == "$want" ]] && { sc_ok "VirtualService $1: $got"; return 0; }
    ((SECONDS < deadline)) || break
    sleep 0.5
  done
  k get "$VS_GROUP" "$1" -n default -o yaml 2>&1 | sed -n '/^status:/,$p'
  sc_fail "VirtualService $1 after $3 s: $got (expected $want)"
}

# sc_wait_gone KIND NAME SECS: the object no longer exists.
_sc_absent() { ! k get "$1" "$2" -n default >/dev/null 2>&1; }
sc_wait_gone() {
  sc_retry "$3" _sc_absent "$1" "$2" ||
    sc_fail "$1 $2 still exists after $3 s (finalizers: $(k get "$1" "$2" -n default -o jsonpath='{.metadata.finalizers}' 2>&1))"
}

# sc_reset: no VirtualService or RealServer left in the cluster and no trace of
# the examples' VIPs in any director's table (a failed scenario before this one
# must not decide this one).
sc_reset() {
  k delete "$VS_GROUP,$RS_GROUP" --all -A --wait=true --timeout=90s >/dev/null 2>&1 || true
  local d
  d=$(lab_node dir1)
  sc_retry 60 _sc_no_example_vips "$d" ||
    sc_fail "leftovers of an earlier scenario in $d's IPVS table: $(in_node "$d" ipvsadm -Sn | tr '\n' ';')"
}
_sc_no_example_vips() { ! in_node "$1" ipvsadm -Sn | grep -q -e '192\.0\.2\.[123]0:'; }

# --- kernel state -----------------------------------------------------------------------
# sc_ipvs NODE [SERVICE]: NODE's `ipvsadm -Sn` lines (of SERVICE, e.g. "-t VIP:PORT"), sorted.
sc_ipvs() {
  if [[ -n ${2:-} ]]; then
    in_node "$1" ipvsadm -Sn | grep -F -e "$2 " | LC_ALL=C sort
  else
    in_node "$1" ipvsadm -Sn | LC_ALL=C sort
  fi
}

# sc_wait_ipvs NODE SERVICE SECS <<RULES: wait until NODE's `ipvsadm -Sn` lines
# for SERVICE equal RULES (any order; no lines: the service is absent). The
# comparison runs inside the node, so it polls without a round trip each time.
sc_wait_ipvs() {
  local node=$1 svc=$2 secs=$3 want got
  want=$(grep -v '^[[:space:]]*$' | LC_ALL=C sort)
  if printf '%s\n' "$want" | in_node_stdin "$node" sh -c '
      want=$(grep -v "^[[:space:]]*\$" | LC_ALL=C sort); end=$(( $(date +%s) + $2 ))
      while :; do
        got=$(ipvsadm -Sn | grep -F -e "$1 " | LC_ALL=C sort)
        [ "$got" = "$want" ] && exit 0
        [ "$(date +%s)" -lt "$end" ] || exit 1
        sleep 0.2
      done' wait "$svc" "$secs"; then
    sc_ok "IPVS on $node for $svc converged"
    return 0
  fi
  got=$(sc_ipvs "$node" "$svc")
  echo "IPVS on $node for $svc after $secs s (--- expected, +++ actual):"
  diff -u <(printf '%s\n' "$want") <(printf '%s\n' "$got") | sed -n '3,$p'
  sc_fail "IPVS table of $node for $svc did not converge within $secs s: $(printf '%s' "$got" | tr '\n' ';')"
}

# sc_svc_stat NODE SERVICE FIELD: conns, inpkts, outpkts, inbytes or outbytes
# of SERVICE ("-t VIP:PORT") from `ipvsadm -Ln --stats --exact`.
sc_svc_stat() {
  # shellcheck disable=SC2086
  in_node "$1" ipvsadm -Ln --stats --exact $2 | awk -v f="$3" '
    BEGIN { split("conns inpkts outpkts inbytes outbytes", n, " "); for (i in n) col[n[i]] = i + 2 }
    $1 == "TCP" || $1 == "UDP" { print $(col[f]); exit }'
}

# sc_wait_conns NODE SERVICE N: the published Conns counter reaches N (IPVS
# publishes counters about every 2 s).
_sc_conns_reached() { local c; c=$(sc_svc_stat "$1" "$2" conns); [[ -n $c ]] && ((c >= $3)); }
sc_wait_conns() {
  sc_retry 10 _sc_conns_reached "$@" ||
    sc_fail "Conns of $2 on $1 stayed at $(sc_svc_stat "$1" "$2" conns), expected at least $3"
}

# sc_addr_dev NODE ADDR: the interface holding ADDR in NODE (empty when none).
sc_addr_dev() {
  in_node "$1" ip -o addr show | awk -v a="$2" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }'
}
# _sc_vip_on NODE ADDR [DEV]: NODE holds ADDR (on DEV).
_sc_vip_on() {
  local dev
  dev=$(sc_addr_dev "$1" "$2")
  [[ -n $dev ]] && [[ -z ${3:-} || $dev == "$3" ]]
}
sc_sysctl() { in_node "$1" cat "/proc/sys/net/ipv4/conf/$2/$3"; }
# sc_sysctl_eff NODE IFACE NAME: max(all, IFACE), what the kernel applies for
# arp_ignore, arp_announce and rp_filter.
sc_sysctl_eff() {
  local a i
  a=$(sc_sysctl "$1" all "$3")
  i=$(sc_sysctl "$1" "$2" "$3")
  ((a > i)) && echo "$a" || echo "$i"
}

# --- traffic -------------------------------------------------------------------------------
# sc_fetch N URL: N sequential GETs from the client; sets FETCH[<body>] counts,
# FETCH_ERR and FETCH_SUMMARY ("rs1=20 rs2=20 ERR=0").
declare -gA FETCH=()
FETCH_ERR=0
FETCH_SUMMARY=
sc_fetch() {
  local bodies b
  bodies=$(in_node client sh -c '
    i=0
    while [ "$i" -lt "$1" ]; do
      timeout 5 wget -q -O - "$2" 2>/dev/null || echo ERR
      i=$((i + 1))
    done' fetch "$1" "$2") || true
  FETCH=()
  FETCH_ERR=0
  while read -r b; do
    [[ -z $b ]] && continue
    if [[ $b == ERR ]]; then FETCH_ERR=$((FETCH_ERR + 1)); else FETCH[$b]=$((${FETCH[$b]:-0} + 1)); fi
  done <<<"$bodies"
  FETCH_SUMMARY=$(for b in $(printf '%s\n' "${!FETCH[@]}" | sort); do printf '%s=%s ' "$b" "${FETCH[$b]}"; done)"ERR=$FETCH_ERR"
  echo "$1 GETs of $2: $FETCH_SUMMARY"
}
# sc_got NAME: requests the last sc_fetch got from realserver NAME (rs1..rs5).
sc_got() { echo "${FETCH[$(lab_answer "$1")]:-0}"; }
sc_expect_no_errors() { expect_eq "failed requests ($FETCH_SUMMARY)" 0 "$FETCH_ERR"; }
# sc_expect_dist NAME=COUNT...: exactly these realservers answered, this often.
sc_expect_dist() {
  local kv total=0
  sc_expect_no_errors
  for kv in "$@"; do
    expect_eq "requests answered by ${kv%%=*} ($FETCH_SUMMARY)" "${kv#*=}" "$(sc_got "${kv%%=*}")"
    total=$((total + ${kv#*=}))
  done
  local sum=0 b
  for b in "${!FETCH[@]}"; do sum=$((sum + FETCH[$b])); done
  expect_eq "requests answered in all ($FETCH_SUMMARY)" "$total" "$sum"
}

# sc_traffic_start NAME URL: steady traffic from the client in the background,
# one request every 0.1 s, each line of /tmp/traffic-NAME.log "ok BODY" or "ERR".
sc_traffic_start() {
  in_node client sh -c '
    rm -f "/tmp/traffic-$1.log" "/tmp/traffic-$1.stop" "/tmp/traffic-$1.done"
    (
      while [ ! -e "/tmp/traffic-$1.stop" ]; do
        if b=$(timeout 5 wget -q -O - "$2" 2>/dev/null); then echo "ok $b"; else echo "ERR $(date +%s)"; fi
        sleep 0.1
      done >"/tmp/traffic-$1.log"
      touch "/tmp/traffic-$1.done"
    ) </dev/null >/dev/null 2>&1 &' traffic "$1" "$2" || sc_fail "cannot start traffic $1"
}
# sc_traffic_stop NAME: stop it; sets TRAFFIC_OK and TRAFFIC_ERR.
sc_traffic_stop() {
  local counts
  counts=$(in_node client sh -c '
    touch "/tmp/traffic-$1.stop"
    i=0
    while [ ! -e "/tmp/traffic-$1.done" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    echo "$(grep -c "^ok " "/tmp/traffic-$1.log") $(grep -c "^ERR" "/tmp/traffic-$1.log")"' traffic "$1")
  read -r TRAFFIC_OK TRAFFIC_ERR <<<"$counts"
  TRAFFIC_OK=${TRAFFIC_OK:-0} TRAFFIC_ERR=${TRAFFIC_ERR:-0}
  echo "traffic $1: $TRAFFIC_OK answered, $TRAFFIC_ERR failed"
}

# sc_traffic_clean NAME WHEN [MIN]: stop traffic NAME; it must have run (at
# least MIN answers, default 50) and no request may have failed (WHEN says
# during what, for the messages).
sc_traffic_clean() {
  sc_traffic_stop "$1"
  ((TRAFFIC_OK >= ${3:-50})) || sc_fail "traffic $1: only $TRAFFIC_OK requests answered $2; the traffic did not run"
  expect_eq "requests of $1 that failed $2 ($TRAFFIC_OK answered)" 0 "$TRAFFIC_ERR"
}

# --- agents -------------------------------------------------------------------------------
# sc_agent_full_syncs NODE: the agent's full syncs so far
# (lvs_agent_syncs_total{mode="full"}).
sc_agent_full_syncs() {
  lab_agent_metrics "$1" | awk '/^lvs_agent_syncs_total[{]mode="full"[}]/ { print $NF; exit }'
}
_sc_full_sync_since() { (($(sc_agent_full_syncs "$1") > $2)); }
# sc_after_full_sync NODE: wait (up to 150 s) for NODE's agent's next full
# resync, so that the one after it is a whole resync interval away.
sc_after_full_sync() {
  local full0
  full0=$(sc_agent_full_syncs "$1")
  sc_retry 150 _sc_full_sync_since "$1" "$full0" ||
    sc_fail "no full resync on $1 within 150 s (lvs_agent_syncs_total{mode=\"full\"} stayed at $full0)"
}

# sc_agent_ops NODE: the sum of lvs_agent_ops_total over all kinds (kernel writes).
sc_agent_ops() {
  lab_agent_metrics "$1" | awk '/^lvs_agent_ops_total[{ ]/ { s += $NF } END { print s + 0 }'
}

# --- expected tables of the examples --------------------------------------------------------
# rules_nat [SCHED [W1 W2 W3]]: the NAT example's rules; a weight "-" leaves
# that realserver out.
rules_nat() {
  local sched=${1:-rr} w=("${2:-1}" "${3:-1}" "${4:-1}") i
  echo "-A $SVC_NAT -s $sched"
  for i in 0 1 2; do
    [[ ${w[$i]} == - ]] && continue
    echo "-a $SVC_NAT -r ${NAT_RS_ADDRS[$i]}:80 -m -w ${w[$i]}"
  done
}
rules_dr() {
  echo "-A $SVC_DR -s wrr"
  echo "-a $SVC_DR -r $(lab_node_ip "$(lab_node rs1)"):80 -g -w 1"
  echo "-a $SVC_DR -r $(lab_node_ip "$(lab_node rs2)"):80 -g -w 2"
}
rules_tun() {
  echo "-A $SVC_TUN -s wlc"
  echo "-a $SVC_TUN -r $(lab_node_ip "$(lab_node rs4)"):80 -i -w 1 --tun-type ipip"
  echo "-a $SVC_TUN -r $(lab_node_ip "$(lab_node rs5)"):80 -i -w 1 --tun-type ipip"
}

# sc_up_nat: examples/nat.yaml applied and converged (kernel and status).
sc_up_nat() {
  sc_apply nat
  rules_nat | sc_wait_ipvs "$(lab_node dir1)" "$SVC_NAT" 90 || exit 1
  sc_wait_vs web-nat 3 60
}
