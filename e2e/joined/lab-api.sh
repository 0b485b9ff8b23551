# The scenario lab API (see e2e/scenarios/lib.sh) for the joined lab: the host's
# cluster lab plus the qemu VM whose network namespaces are the nodes.
# Needs the lab's environment (e2e/joined/lab.sh env) in the process.
# shellcheck shell=bash
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

lab_name() { echo joined; }
lab_kubectl() { kubectl "$@"; }
in_node() { jl_in_node "$@"; }
in_node_stdin() { jl_in_node -i "$@"; }
# The examples' node names are the lab's node names.
lab_node() { echo "$1"; }
lab_node_ip() { jl_node_ip "$1"; }
lab_answer() { echo "$1"; }
lab_manifest() { echo "$LVS_REPO/examples/$1.yaml"; }

lab_agent_kill() { jl_exec root "kill -9 \$(cat /run/lab/agents/$1.pid)"; }
# lab_agent_resync NODE: a full resync of NODE's agent now (SIGHUP).
lab_agent_resync() { jl_exec root "kill -HUP \$(cat /run/lab/agents/$1.pid)"; }
lab_agent_starts() { jl_exec root "cat /run/lab/agents/$1.starts"; }
lab_agent_metrics() { jl_exec "$1" 'wget -q -O - http://127.0.0.1:9477/metrics'; }
# lab_metrics_targets: "JOB NAME HOST:PORT" for each agent's and the operator's
# /metrics as the host reaches them (the agents' through qemu port forwards).
lab_metrics_targets() {
  local t
  for t in ${LVS_JOINED_AGENT_METRICS:?no agent metrics ports in the lab environment}; do
    echo "lvs-agent ${t%%=*} ${t#*=}"
  done
  local op=${LVS_JOINED_OPERATOR_METRICS#http://}
  echo "lvs-operator operator ${op%%/*}"
}
lab_agent_readyz() { jl_exec "$1" 'wget -q -O /dev/null http://127.0.0.1:9477/readyz' 2>/dev/null; }

lab_apiserver_stop() { LVS_LAB_DIR="$LVS_JOINED_DIR/cluster" "$LVS_REPO/e2e/cluster/lab.sh" stop-apiserver; }
lab_apiserver_start() { LVS_LAB_DIR="$LVS_JOINED_DIR/cluster" "$LVS_REPO/e2e/cluster/lab.sh" start-apiserver; }

# The router shares the lan with the director and the DR realservers.
lab_arp_peer() { echo "router lan0"; }

# --- director HA (e2e/scenarios/90-ha.sh) ---------------------------------------
# lab_ha_on NODE...: NODE's agent runs with the HA flags (jl_ha_args); an agent
# started without them is restarted with them. Returns when every NODE's agent
# answers GET /ha.
lab_ha_on() {
  local n want
  declare -A before=()
  for n in "$@"; do
    want=$(jl_ha_args "$n")
    before[$n]=$(jl_exec root "cat /run/lab/agents/$n.starts") || return 1
    jl_exec root "f=/run/lab/agents/$n.args
      [ \"\$(cat \$f 2>/dev/null)\" = '$want' ] && exit 3
      echo '$want' >\$f
      kill -TERM \$(cat /run/lab/agents/$n.pid)"
    case $? in
      0) ;;
      3) before[$n]="" ;; # already on: no restart
      *) return 1 ;;
    esac
  done
  for n in "$@"; do
    lvs_retry 120 _jl_agent_serves_ha "$n" "${before[$n]}" || return 1
  done
}
# _jl_agent_serves_ha NODE [OLD-STARTS]: the agent answers GET /ha (and has
# been restarted since start OLD-STARTS).
_jl_agent_serves_ha() {
  if [[ -n $2 ]]; then
    [[ $(jl_exec root "cat /run/lab/agents/$1.starts") != "$2" ]] || return 1
  fi
  jl_exec "$1" 'wget -q -O /dev/null http://127.0.0.1:9477/ha' 2>/dev/null
}
# lab_ha_state NODE: the agent's GET /ha answer ({node, active, standby}).
lab_ha_state() { jl_exec "$1" 'wget -q -O - http://127.0.0.1:9477/ha'; }
# lab_agent_hold NODE on|off: on: NODE's agent, once dead, is not restarted
# (until off).
lab_agent_hold() {
  case $2 in
    on) jl_exec root "touch /run/lab/agents/$1.hold" ;;
    off) jl_exec root "rm -f /run/lab/agents/$1.hold" ;;
  esac
}
# lab_node_links NODE up|down: all of NODE's links (the lan and its path to
# the API server), as if the node lost power or its cable.
lab_node_links() { jl_exec "$1" "ip link set eth0 $2 && ip link set mgmt0 $2"; }
# lab_node_api NODE cut|restore: NODE alone loses (gets back) its path to the
# API server; the lan stays up.
lab_node_api() {
  case $2 in
    cut) jl_exec "$1" 'ip route add blackhole 10.0.2.2/32 && ! ip route get 10.0.2.2 >/dev/null 2>&1' ;;
    restore) jl_exec "$1" 'ip route del blackhole 10.0.2.2/32' ;;
  esac
}
# lab_node_mac NODE: the MAC of NODE's lan interface.
lab_node_mac() { jl_exec "$1" "ip -o link show eth0" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p'; }
# lab_directors: the two director nodes of the HA scenarios.
lab_directors() { echo dir1 dir2; }

# lab_plugin ARG...: `kubectl lvs ARG...` as a user bound only to the chart's
# plugin ClusterRole.
lab_plugin() {
  if ! command -v kubectl-lvs >/dev/null; then
    echo "lab_plugin: no kubectl-lvs on the PATH: the lab started without the plugin binary (make build)" >&2
    return 127
  fi
  KUBECONFIG=${LVS_JOINED_PLUGIN_KUBECONFIG:?no plugin kubeconfig in the lab environment} kubectl lvs "$@"
}

lab_has() {
  case $1 in
    apiserver-restart | ha | snat | metrics-scrape | plugin) return 0 ;;
    *) return 1 ;;
  esac
}
