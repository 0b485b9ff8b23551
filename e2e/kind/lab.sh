#!/usr/bin/env bash
# The kind lab: a kind cluster on Docker with the project's image loaded and
# the chart installed, for the shared end-to-end scenarios (e2e/scenarios).
# Meant for CI runners with Docker and the ip_vs modules (see
# .github/workflows/e2e-kind.yaml); it needs the host kernel's IPVS, so it
# cannot run on a machine without it.
#
# Usage: lab.sh up | down | env
#
# Layout (node names from examples/*.yaml -> kind):
#   dir1      lvs-e2e-worker   (label lvs.lvs-operator.io/director=true); also
#             on the Docker network lvs-e2e-nat as 10.10.0.2
#   rs1, rs4  lvs-e2e-worker2  a hostNetwork busybox httpd answering "rs1"
#   rs2, rs5  lvs-e2e-worker3  a hostNetwork busybox httpd answering "rs2"
#   NAT realservers 10.10.0.11-13: busybox containers lvs-e2e-rs1..3 on
#             lvs-e2e-nat, default route via the director, answering rs1..rs3
#   client    busybox container lvs-e2e-client on the kind network, routing
#             192.0.2.0/24 (the examples' VIPs) via the director
#
#   LVS_KIND_IMAGE     image to use (default lvs-operator:e2e, built from the Dockerfile)
#   LVS_KIND_NO_BUILD  1: use LVS_KIND_IMAGE as it is (already built)
#   LVS_KIND_CLUSTER   cluster name (default lvs-e2e)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
T0=$SECONDS
step() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }

need() {
  local t
  for t in "$@"; do command -v "$t" >/dev/null || lvs_die "$t is not installed"; done
}

cmd_up() {
  need docker kind kubectl helm
  local m
  for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc ipip; do
    [[ -d /sys/module/$m ]] || lvs_die "kernel module $m is not loaded on this host (sudo modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc ipip)"
  done
  mkdir -p "$KL_DIR"
  if [[ ${LVS_KIND_NO_BUILD:-0} != 1 ]]; then
    step "docker build -t $KL_IMAGE (the Dockerfile: static release binaries)"
    docker build -t "$KL_IMAGE" "$LVS_REPO" >"$KL_DIR/docker-build.log" 2>&1 ||
      { tail -n 30 "$KL_DIR/docker-build.log" >&2; lvs_die "docker build failed (log: $KL_DIR/docker-build.log)"; }
  fi
  step "kind create cluster --name $KL_CLUSTER"
  kind create cluster --name "$KL_CLUSTER" --config "$here/cluster.yaml" --wait 180s
  kind get kubeconfig --name "$KL_CLUSTER" >"$KL_DIR/kubeconfig"
  export KUBECONFIG=$KL_DIR/kubeconfig
  cat >"$KL_DIR/kind.env" <<EOF
export KUBECONFIG=$KL_DIR/kubeconfig
export LVS_KIND_CLUSTER=$KL_CLUSTER
export LVS_KIND_DIR=$KL_DIR
EOF

  step "kind load docker-image $KL_IMAGE $KL_BUSYBOX"
  docker image inspect "$KL_BUSYBOX" >/dev/null 2>&1 || docker pull -q "$KL_BUSYBOX"
  kind load docker-image "$KL_IMAGE" --name "$KL_CLUSTER"
  kind load docker-image "$KL_BUSYBOX" --name "$KL_CLUSTER"

  step "ipvsadm in the nodes (apt-get; the scenarios read the kernel tables with it)"
  local n pids=()
  for n in $(kind get nodes --name "$KL_CLUSTER"); do
    docker exec "$n" sh -c 'command -v ipvsadm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ipvsadm; }' \
      >"$KL_DIR/ipvsadm-$n.log" 2>&1 &
    pids+=($!)
  done
  for n in "${pids[@]}"; do wait "$n" || lvs_die "installing ipvsadm in a node failed (logs: $KL_DIR/ipvsadm-*.log)"; done

  step "helm install lvs charts/lvs-operator -n lvs-system (image $KL_IMAGE)"
  helm install lvs "$LVS_REPO/charts/lvs-operator" -n lvs-system --create-namespace \
    --set "image.repository=${KL_IMAGE%:*}" --set "image.tag=${KL_IMAGE##*:}" --set image.pullPolicy=Never \
    --set agent.resyncIntervalSeconds=30 -f "$LVS_REPO/e2e/lib/lab-pool-values.yaml" --wait --timeout 5m

  step "NAT realservers: Docker network $KL_NAT_NET 10.10.0.0/24 behind the director"
  local dir1
  dir1=$(kl_node dir1)
  docker network create --subnet 10.10.0.0/24 --gateway 10.10.0.1 "$KL_NAT_NET" >/dev/null
  docker network connect --ip 10.10.0.2 "$KL_NAT_NET" "$dir1"
  local i
  for i in 1 2 3; do
    docker run -d --name "$KL_CLUSTER-rs$i" --network "$KL_NAT_NET" --ip "10.10.0.1$i" --cap-add NET_ADMIN \
      "$KL_BUSYBOX" sh -c "ip route replace default via 10.10.0.2 && mkdir -p /www && echo rs$i >/www/index.html && exec httpd -f -p 80 -h /www" >/dev/null
  done

  step "DR/TUN realserver web servers on $(kl_node rs1) and $(kl_node rs2) (hostNetwork :80)"
  for i in 1 2; do
    kubectl apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: web-rs$i
  namespace: default
  labels: {app: lab-web}
spec:
  nodeName: $(kl_node "rs$i")
  hostNetwork: true
  containers:
    - name: httpd
      image: $KL_BUSYBOX
      imagePullPolicy: Never
      command: ["sh", "-c", "mkdir -p /www && echo rs$i >/www/index.html && exec httpd -f -p 80 -h /www"]
EOF
  done
  kubectl wait --for condition=Ready pod -l app=lab-web -n default --timeout 120s

  step "client container $KL_CLIENT (routes 192.0.2.0/24 via the director $(kl_node_ip "$dir1"))"
  docker run -d --name "$KL_CLIENT" --network kind --cap-add NET_ADMIN "$KL_BUSYBOX" sleep 86400 >/dev/null
  docker exec "$KL_CLIENT" ip route add 192.0.2.0/24 via "$(kl_node_ip "$dir1")"

  step "waiting for the agents"
  kubectl rollout status daemonset/lvs-lvs-operator-agent -n lvs-system --timeout 180s
  kubectl rollout status deployment/lvs-lvs-operator-operator -n lvs-system --timeout 180s
  step "up"
  cat "$KL_DIR/kind.env"
}

cmd_down() {
  local i
  docker rm -f "$KL_CLIENT" "$KL_CLUSTER-rs1" "$KL_CLUSTER-rs2" "$KL_CLUSTER-rs3" >/dev/null 2>&1 || true
  kind delete cluster --name "$KL_CLUSTER" || true
  docker network rm "$KL_NAT_NET" >/dev/null 2>&1 || true
  rm -f "$KL_DIR/kind.env"
  for i in "$KL_DIR"/*.log; do [[ -f $i ]] && echo "log: $i" >&2; done
  return 0
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  env) [[ -f $KL_DIR/kind.env ]] || lvs_die "no kind lab (e2e/kind/lab.sh up)"; cat "$KL_DIR/kind.env" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
