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
lab_agent_starts() { jl_exec root "cat /run/lab/agents/$1.starts"; }
lab_agent_metrics() { jl_exec "$1" 'wget -q -O - http://127.0.0.1:9477/metrics'; }
lab_agent_readyz() { jl_exec "$1" 'wget -q -O /dev/null http://127.0.0.1:9477/readyz' 2>/dev/null; }

lab_apiserver_stop() { LVS_LAB_DIR="$LVS_JOINED_DIR/cluster" "$LVS_REPO/e2e/cluster/lab.sh" stop-apiserver; }
lab_apiserver_start() { LVS_LAB_DIR="$LVS_JOINED_DIR/cluster" "$LVS_REPO/e2e/cluster/lab.sh" start-apiserver; }

# The router shares the lan with the director and the DR realservers.
lab_arp_peer() { echo "router lan0"; }

lab_has() {
  case $1 in
    apiserver-restart) return 0 ;;
    *) return 1 ;;
  esac
}
