#!/usr/bin/env bash
# Writes a kubeconfig that authenticates as a ServiceAccount with a token from
# the TokenRequest API (`kubectl create token`), so what the holder may do is
# exactly what RBAC grants that ServiceAccount.
#
# Usage: sa-kubeconfig.sh [--bind-node NODE] NAMESPACE SERVICEACCOUNT OUT [SERVER]
#   SERVER      API server URL to write (default: $LVS_LAB_APISERVER, the host
#               URL; pass $LVS_LAB_APISERVER_VM for qemu guests)
#   --bind-node NODE  bind the token to the Node object NODE (which must exist):
#               the API server then adds the node's name to the user's extra
#               info (authentication.kubernetes.io/node-name), as it does for a
#               DaemonSet pod's token, and invalidates the token when the Node
#               is deleted. The agent's own-node admission policy relies on it.
#   KUBECONFIG  admin kubeconfig used to request the token (from `lab.sh env`)
#   LVS_SA_TOKEN_DURATION  token lifetime (default 24h)
set -euo pipefail

die() { echo "sa-kubeconfig.sh: $*" >&2; exit 1; }

bind_node=
if [[ ${1:-} == --bind-node ]]; then
  [[ -n ${2:-} ]] || die "--bind-node needs a node name"
  bind_node=$2
  shift 2
fi
(($# == 3 || $# == 4)) || die "usage: sa-kubeconfig.sh [--bind-node NODE] NAMESPACE SERVICEACCOUNT OUT [SERVER]"
ns=$1 sa=$2 out=$3
server=${4:-${LVS_LAB_APISERVER:-}}
[[ -n $server ]] || die "no server URL: pass SERVER or eval \"\$(e2e/cluster/lab.sh env)\" first"
[[ -n ${LVS_LAB_CA:-} && -f $LVS_LAB_CA ]] || die "LVS_LAB_CA unset or missing: eval \"\$(e2e/cluster/lab.sh env)\" first"
[[ -n ${KUBECONFIG:-} ]] || die "KUBECONFIG unset: eval \"\$(e2e/cluster/lab.sh env)\" first"

bind=()
if [[ -n $bind_node ]]; then
  node_uid=$(kubectl get node "$bind_node" -o jsonpath='{.metadata.uid}') ||
    die "--bind-node $bind_node: no such Node"
  bind=(--bound-object-kind Node --bound-object-name "$bind_node" --bound-object-uid "$node_uid")
fi
token=$(kubectl create token "$sa" -n "$ns" --duration "${LVS_SA_TOKEN_DURATION:-24h}" "${bind[@]}") ||
  die "TokenRequest for serviceaccount $ns/$sa failed (does it exist?${bind_node:+ does node $bind_node?})"
[[ $token == *.*.* ]] || die "TokenRequest for $ns/$sa returned something that is not a JWT"

umask 077
cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lvs-lab
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$LVS_LAB_CA")
users:
- name: $ns-$sa
  user:
    token: $token
contexts:
- name: $ns-$sa
  context:
    cluster: lvs-lab
    user: $ns-$sa
    namespace: $ns
current-context: $ns-$sa
EOF
