# Host-side helpers of the kind lab (bash). Sourced by lab.sh, lab-api.sh and
# run-suite.sh.
# shellcheck shell=bash disable=SC2034

KL_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
. "$KL_HERE/../lib/common.sh"

KL_CLUSTER=${LVS_KIND_CLUSTER:-lvs-e2e}
KL_IMAGE=${LVS_KIND_IMAGE:-lvs-operator:e2e}
KL_BUSYBOX=${LVS_KIND_BUSYBOX:-busybox:1.36}
KL_NAT_NET=$KL_CLUSTER-nat
KL_CLIENT=$KL_CLUSTER-client
KL_DIR=${LVS_KIND_DIR:-$LVS_CACHE/kind-lab}

# The examples' node names on this cluster: the worker directs; worker2 and
# worker3 are the realserver nodes (rs1 and rs4 share worker2, rs2 and rs5
# share worker3).
kl_node() {
  case $1 in
    dir1) echo "$KL_CLUSTER-worker" ;;
    rs1 | rs4) echo "$KL_CLUSTER-worker2" ;;
    rs2 | rs5) echo "$KL_CLUSTER-worker3" ;;
    *) echo "kl_node: no kind node for '$1'" >&2; return 1 ;;
  esac
}

# What a realserver answers: the NAT containers rs1-rs3 answer their names;
# the web server on worker2 answers rs1 and on worker3 rs2, so rs4 (worker2)
# answers rs1 and rs5 (worker3) answers rs2.
kl_answer() {
  case $1 in
    rs4) echo rs1 ;;
    rs5) echo rs2 ;;
    *) echo "$1" ;;
  esac
}

# kl_node_ip NODE: the node's InternalIP (on the kind network).
kl_node_ip() {
  kubectl get node "$1" -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address}'
}

# kl_container NODE: the Docker container behind a node name ("client" too).
kl_container() {
  case $1 in
    client) echo "$KL_CLIENT" ;;
    *) echo "$1" ;;
  esac
}
