#!/usr/bin/env bash
# make demo: build and start the joined lab, apply examples/nat.yaml, dr.yaml
# and tun.yaml as they are, and print for each method the VirtualService
# (kubectl get lvsvs), the director's live IPVS table and how 60 requests from
# the client were spread over the realservers. Stops the lab at the end unless
# KEEP=1. A lab that is already running (an earlier KEEP=1) is used and left
# running.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lab-api.sh
. "$here/lab-api.sh"
# shellcheck source=../scenarios/lib.sh
. "$here/../scenarios/lib.sh"

keep=${KEEP:-0}
[[ $keep == 0 || $keep == 1 ]] || lvs_die "KEEP must be 0 or 1, got '$keep'"
lvs_need_root
dir=$(jl_dir)
T0=$SECONDS
say() { printf '%s\n' "$*"; }
step() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*"; }
# sc_fail (from the scenario helpers) ends the demo with its reason.
RUNNER_WHY_FILE=$(mktemp)

started=0
finish() {
  local rc=$?
  rm -f "$RUNNER_WHY_FILE"
  if ((started)) && [[ $keep != 1 ]]; then
    step "stopping the lab (make demo KEEP=1 keeps it running)"
    "$here/lab.sh" down >/dev/null 2>&1 || say "lab.sh down failed; run: e2e/joined/lab.sh down"
  fi
  ((rc == 0)) || say "make demo failed (exit $rc); logs in $dir"
}
trap finish EXIT
trap 'exit 130' INT TERM

say "lvs-operator demo: kubectl apply -> operator -> node agents -> kernel IPVS -> real traffic"
say "(first run: builds the node agent and operator, etcd/kube-apiserver/kubectl/helm from Go"
say " modules, and fetches a Debian kernel for the VM; later runs reuse .cache/)"
if [[ -f $dir/joined.env ]]; then
  step "using the lab already running in $dir"
else
  started=1
  "$here/lab.sh" up 2>&1 >/dev/null | sed -u 's/^/  /' || true
  [[ -f $dir/joined.env ]] || lvs_die "the lab did not come up (logs in $dir)"
fi
jl_load_env
step "lab up: API server $LVS_LAB_APISERVER, agents on ${JL_AGENT_NODES[*]}, operator on the host"

k delete "$VS_GROUP,$RS_GROUP" --all -A --wait=true --timeout=90s >/dev/null 2>&1 || true
for ex in nat dr tun; do
  step "kubectl apply -f examples/$ex.yaml"
  k apply -f "$LVS_REPO/examples/$ex.yaml" | sed 's/^/    /'
done
step "waiting for the kernel tables and the status"
(
  rules_nat | sc_wait_ipvs dir1 "$SVC_NAT" 120
  rules_dr | sc_wait_ipvs dir1 "$SVC_DR" 60
  rules_tun | sc_wait_ipvs dir1 "$SVC_TUN" 60
  sc_wait_vs web-nat 3 60
  sc_wait_vs web-dr 2 60
  sc_wait_vs web-tun 2 60
) >"$dir/demo-wait.log" 2>&1 || lvs_die "$(cat "$RUNNER_WHY_FILE") (log: $dir/demo-wait.log)"

# section TITLE VS SERVICE URL NOTE...
section() {
  local title=$1 vs=$2 vip=$3 url=$4
  shift 4
  say ""
  say "=== $title ==="
  local line
  for line in "$@"; do say "  $line"; done
  say ""
  say "  \$ kubectl get lvsvs $vs"
  k get "$VS_GROUP" "$vs" -n default | sed 's/^/  /'
  say ""
  say "  \$ ipvsadm -Ln -t $vip        # on the director dir1"
  in_node dir1 ipvsadm -Ln -t "$vip" | sed 's/^/  /'
  sc_fetch 60 "$url" >/dev/null
  local b dist=()
  for b in $(printf '%s\n' "${!FETCH[@]}" | sort); do dist+=("$b: ${FETCH[$b]}"); done
  ((FETCH_ERR == 0)) || dist+=("failed: $FETCH_ERR")
  say ""
  say "  60 requests from the client to $url -> $(IFS=,; echo "${dist[*]}" | sed 's/,/, /g')"
}

section "NAT (examples/nat.yaml): masquerading with port mapping 8080 -> 80, rr" \
  web-nat "$VIP_NAT:8080" "$URL_NAT" \
  "The director rewrites the VIP to each realserver's address and port; rs1-rs3" \
  "route their replies back through the director (their default gateway)."
section "DR (examples/dr.yaml): direct routing to the nodes rs1 and rs2, wrr with weights 1:2" \
  web-dr "$VIP_DR:80" "$URL_DR" \
  "rs1 and rs2 hold the VIP on lo with arp_ignore=1/arp_announce=2 (set by their" \
  "agents) and answer the client directly: $(in_node rs1 ip -o addr show dev lo | awk -v v="$VIP_DR/32" '$4 == v {print "rs1 lo " $4}')."
section "TUN (examples/tun.yaml): IP-in-IP to the nodes rs4 and rs5 in another subnet, wlc" \
  web-tun "$VIP_TUN:80" "$URL_TUN" \
  "rs4 and rs5 decapsulate on tunl0, which holds the VIP (rp_filter relaxed by their" \
  "agents), and answer the client directly: $(in_node rs4 ip -o addr show dev tunl0 | awk -v v="$VIP_TUN/32" '$4 == v {print "rs4 tunl0 " $4}')."

say ""
say "=== all VirtualServices and the agents' reports ==="
k get "$VS_GROUP" -n default | sed 's/^/  /'
k get lvsnodes.lvs.lvs-operator.io | sed 's/^/  /'
say ""
if [[ $keep == 1 || $started == 0 ]]; then
  say "Poke at it (the lab stays up):"
else
  say "Poke at it: run 'make demo KEEP=1' to keep the lab running, then:"
fi
say "  eval \"\$(e2e/joined/lab.sh env)\"      # KUBECONFIG=$KUBECONFIG, and the lab's kubectl on PATH"
say "  kubectl get lvsvs,realservers,lvsnodes -A"
say "  kubectl patch realserver web-nat-2 --type merge -p '{\"spec\":{\"weight\":3}}'"
say "  e2e/joined/in-node.sh dir1 ipvsadm -Ln                                  # a node's IPVS table"
say "  e2e/joined/in-node.sh client wget -q -O - http://$VIP_NAT:8080/           # a request from the client"
say "  e2e/joined/in-node.sh root cat /run/lab/logs/dir1.log                     # an agent's log"
say "Stop a kept lab with: e2e/joined/lab.sh down"
step "done"
