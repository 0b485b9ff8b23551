#!/usr/bin/env bash
# Writes a kubeconfig that authenticates as a ServiceAccount with a token from
# the TokenRequest API (`kubectl create token`), so what the holder may do is
# exactly what RBAC grants that ServiceAccount.
#
# Usage: sa-kubeconfig.sh NAMESPACE SERVICEACCOUNT OUT [SERVER]
#   SERVER      API server URL to write (default: $LVS_LAB_APISERVER, the host
#               URL; pass $LVS_LAB_APISERVER_VM for qemu guests)
#   KUBECONFIG  admin kubeconfig used to request the token (from `lab.sh env`)
#   LVS_SA_TOKEN_DURATION  token lifetime (default 24h)
set -euo pipefail

die() { echo "sa-kubeconfig.sh: $*" >&2; exit 1; }

(($# == 3 || $# == 4)) || die "usage: sa-kubeconfig.sh NAMESPACE SERVICEACCOUNT OUT [SERVER]"
ns=$1 sa=$2 out=$3
server=${4:-${LVS_LAB_APISERVER:-}}
[[ -n $server ]] || die "no server URL: pass SERVER or eval \"\$(e2e/cluster/lab.sh env)\" first"
[[ -n ${LVS_LAB_CA:-} && -f $LVS_LAB_CA ]] || die "LVS_LAB_CA unset or missing: eval \"\$(e2e/cluster/lab.sh env)\" first"
[[ -n ${KUBECONFIG:-} ]] || die "KUBECONFIG unset: eval \"\$(e2e/cluster/lab.sh env)\" first"

token=$(kubectl create token "$sa" -n "$ns" --duration "${LVS_SA_TOKEN_DURATION:-24h}") ||
  die "TokenRequest for serviceaccount $ns/$sa failed (does it exist?)"
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
