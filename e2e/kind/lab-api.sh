# The scenario lab API (see e2e/scenarios/lib.sh) for the kind lab. Needs the
# lab's environment (e2e/kind/lab.sh env) in the process.
# shellcheck shell=bash
# shellcheck source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

lab_name() { echo kind; }
lab_kubectl() { kubectl "$@"; }
in_node() {
  local c
  c=$(kl_container "$1")
  shift
  docker exec "$c" "$@"
}
in_node_stdin() {
  local c
  c=$(kl_container "$1")
  shift
  docker exec -i "$c" "$@"
}
lab_node() { kl_node "$1"; }
lab_node_ip() { kl_node_ip "$1"; }
lab_answer() { kl_answer "$1"; }

# lab_manifest EXAMPLE: examples/EXAMPLE.yaml with the examples' node names
# replaced by this cluster's (nat.yaml has none and stays as it is).
lab_manifest() {
  local out=$KL_DIR/manifests/$1.yaml n
  mkdir -p "$KL_DIR/manifests"
  cp "$LVS_REPO/examples/$1.yaml" "$out"
  for n in rs1 rs2 rs4 rs5; do
    sed -i "s/^\\([[:space:]]*nodeName:[[:space:]]*\\)${n}[[:space:]]*\$/\\1$(kl_node "$n")/" "$out"
  done
  echo "$out"
}

# The agent pod on NODE.
kl_agent_pod() {
  kubectl get pod -n lvs-system -l app.kubernetes.io/component=agent --field-selector "spec.nodeName=$1" \
    -o jsonpath='{.items[0].metadata.name}'
}
# SIGKILL to the node-agent process inside the node (the kubelet restarts the container).
lab_agent_kill() {
  docker exec "$1" sh -c 'for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = node-agent ] && kill -9 "${p#/proc/}"; done; true'
}
lab_agent_starts() {
  local rc
  rc=$(kubectl get pod -n lvs-system "$(kl_agent_pod "$1")" -o jsonpath='{.status.containerStatuses[0].restartCount}') || return 1
  echo $((rc + 1))
}
# The chart binds the agent to the node's IP (status.hostIP), not loopback.
kl_agent_url() { echo "http://$(kubectl get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}' | awk '{print $1}'):9477$2"; }
lab_agent_metrics() { docker exec "$1" curl -fsS "$(kl_agent_url "$1" /metrics)"; }
lab_agent_readyz() { docker exec "$1" curl -fsS -o /dev/null "$(kl_agent_url "$1" /readyz)" 2>/dev/null; }

# The API server is a static pod: moving its manifest away stops it, moving it
# back starts it again (etcd keeps running).
lab_apiserver_stop() {
  local cp=$KL_CLUSTER-control-plane i
  docker exec "$cp" mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/kube-apiserver.yaml.stopped || return 1
  for ((i = 0; i < 120; i++)); do
    kubectl get --raw /readyz >/dev/null 2>&1 || return 0
    sleep 1
  done
  return 1
}
lab_apiserver_start() {
  local cp=$KL_CLUSTER-control-plane i
  docker exec "$cp" mv /etc/kubernetes/kube-apiserver.yaml.stopped /etc/kubernetes/manifests/kube-apiserver.yaml || return 1
  for ((i = 0; i < 180; i++)); do
    kubectl get --raw /readyz >/dev/null 2>&1 && return 0
    sleep 1
  done
  return 1
}

# The client container sits on the kind network with every node.
lab_arp_peer() { echo "client eth0"; }

lab_has() {
  case $1 in
    apiserver-restart) return 0 ;;
    *) return 1 ;;
  esac
}
