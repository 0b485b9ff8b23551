#!/usr/bin/env bash
# The cluster lab: etcd + kube-apiserver as plain processes on loopback, TLS
# from a throwaway CA, RBAC enforced, TokenRequest enabled, and
# kube-controller-manager with only the endpointslice, garbage collector and
# serviceaccount controllers (Pods written by scenarios, with their status set
# by hand, become EndpointSlices; ownerReferences are honoured; each namespace
# gets the `default` ServiceAccount a Pod needs). No kubelet, no
# scheduler, no node lifecycle: every API object exists, no pod runs.
#
# Usage: lab.sh up | down | env | status | stop-apiserver | start-apiserver
#   stop-apiserver / start-apiserver stop and restart kube-apiserver alone (same
#   port and certificates; etcd keeps running), for outage tests.
#   LVS_LAB_DIR         lab state dir (default ${LVS_CACHE:-<repo>/.cache}/cluster-lab/lab)
#   LVS_APISERVER_PORT  secure port (default: a free port from 6443 upwards)
#   LVS_ETCD_PORT       etcd client port (default: a free port from 23790 upwards)
#
# `up` writes into the lab dir: pki/ (CA, serving and admin certs, SA keys),
# admin.kubeconfig (server https://127.0.0.1:PORT), admin-vm.kubeconfig (server
# https://10.0.2.2:PORT, for qemu guests on user networking), lab.env, *.pid, *.log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${LVS_CACHE:-$repo/.cache}
bindir=$cache/cluster-lab/bin
lab=${LVS_LAB_DIR:-$cache/cluster-lab/lab}
# qemu user networking (slirp) turns the guest's connections to 10.0.2.2 into
# connections from the host to 127.0.0.1, so a loopback-only listener suffices.
vm_host_ip=10.0.2.2
sa_issuer=https://kubernetes.default.svc
service_cidr=10.96.0.0/12

# shellcheck source=../lib/common.sh
source "$here/../lib/common.sh"

die() { echo "lab.sh: $*" >&2; exit 1; }
log() { echo "lab.sh: $*" >&2; }

pid_alive() { lvs_pid_alive "$@"; }
free_port() { lvs_free_port "$1" || die "no free TCP port from $1 up"; }

make_pki() {
  local pki=$lab/pki
  mkdir -p "$pki"
  (
    cd "$pki"
    exec 2>openssl.log
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 \
      -subj "/CN=lvs-cluster-lab-ca" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    cat >apiserver.ext <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$vm_host_ip,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
EOF
    openssl req -newkey rsa:2048 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile apiserver.ext -out apiserver.crt
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n' >client.ext
    openssl req -newkey rsa:2048 -nodes -keyout admin.key -out admin.csr -subj "/O=system:masters/CN=admin"
    openssl x509 -req -in admin.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 \
      -extfile client.ext -out admin.crt
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
    rm -f ./*.csr
  ) || die "openssl failed, see $pki/openssl.log"
  chmod 600 "$pki"/*.key
}

write_kubeconfig() {
  local out=$1 server=$2 pki=$lab/pki
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lvs-lab
  cluster:
    server: $server
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(base64 -w0 <"$pki/admin.crt")
    client-key-data: $(base64 -w0 <"$pki/admin.key")
contexts:
- name: lvs-lab
  context:
    cluster: lvs-lab
    user: admin
current-context: lvs-lab
EOF
  chmod 600 "$out"
}

# start_proc NAME CMD...: CMD in the background, log and pid file in the lab dir.
start_proc() {
  local name=$1
  shift
  lvs_proc_start "$lab/$name.pid" "$lab/$name.log" "$@"
}

wait_until() {
  local what=$1 timeout=$2 pidfile=$3 logfile=$4
  shift 4
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! pid_alive "$pidfile"; then
      tail -n 20 "$logfile" >&2
      die "$what exited before becoming ready (log: $logfile)"
    fi
    if ((SECONDS >= deadline)); then
      tail -n 20 "$logfile" >&2
      die "$what not ready after ${timeout}s (log: $logfile)"
    fi
    sleep 0.5
  done
}

print_env() {
  [[ -f $lab/lab.env ]] || die "no lab at $lab (run: lab.sh up)"
  cat "$lab/lab.env"
}

# start_apiserver_proc: start kube-apiserver with the command line saved in
# kube-apiserver.args (one argument per line); its log is appended to.
start_apiserver_proc() {
  local args=()
  mapfile -t args <"$lab/kube-apiserver.args"
  "${args[@]}" >>"$lab/kube-apiserver.log" 2>&1 </dev/null &
  echo $! >"$lab/kube-apiserver.pid"
}

# wait_apiserver_ready PORT: /readyz answers 200 (120 s at most).
wait_apiserver_ready() {
  local pki=$lab/pki
  wait_until kube-apiserver 120 "$lab/kube-apiserver.pid" "$lab/kube-apiserver.log" \
    curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$1/readyz"
}

cmd_up() {
  local b
  for b in etcd kube-apiserver kube-controller-manager kubectl; do
    [[ -x $bindir/$b ]] || die "$bindir/$b missing (run: e2e/cluster/build-tools.sh)"
  done
  if pid_alive "$lab/etcd.pid" || pid_alive "$lab/kube-apiserver.pid" || pid_alive "$lab/kube-controller-manager.pid"; then
    die "a lab is already running in $lab (run: lab.sh down)"
  fi
  if [[ -d $lab && -n $(ls -A "$lab") && ! -d $lab/pki ]]; then
    die "$lab is not empty and holds no lab; refusing to wipe it"
  fi
  rm -rf "$lab"
  mkdir -p "$lab"
  make_pki

  local etcd_port peer_port api_port
  etcd_port=${LVS_ETCD_PORT:-$(free_port 23790)}
  peer_port=$(free_port $((etcd_port + 1)))
  api_port=${LVS_APISERVER_PORT:-$(free_port 6443)}
  port_in_use "$api_port" && die "apiserver port $api_port already in use"
  port_in_use "$etcd_port" && die "etcd port $etcd_port already in use"

  local etcd_url=http://127.0.0.1:$etcd_port
  start_proc etcd "$bindir/etcd" --name lab --data-dir "$lab/etcd-data" \
    --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "lab=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync --log-level warn
  wait_until etcd 30 "$lab/etcd.pid" "$lab/etcd.log" curl -fsS "$etcd_url/health"

  local pki=$lab/pki
  # The command line is kept so that start-apiserver can bring the same
  # server back after stop-apiserver (etcd keeps running meanwhile).
  printf '%s\n' "$bindir/kube-apiserver" \
    --etcd-servers "$etcd_url" \
    --bind-address 127.0.0.1 --secure-port "$api_port" \
    --advertise-address "$vm_host_ip" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" \
    --service-account-issuer "$sa_issuer" \
    --service-cluster-ip-range "$service_cidr" \
    --authorization-mode Node,RBAC \
    --anonymous-auth=false \
    --allow-privileged=true \
    --profiling=false \
    --v=1 >"$lab/kube-apiserver.args"
  start_apiserver_proc
  write_kubeconfig "$lab/admin.kubeconfig" "https://127.0.0.1:$api_port"
  write_kubeconfig "$lab/admin-vm.kubeconfig" "https://$vm_host_ip:$api_port"
  wait_apiserver_ready "$api_port"

  # Only the controllers the scenarios need: no node lifecycle or pod GC, which
  # would evict or delete Pods on Nodes that no kubelet heartbeats.
  local kcm_port
  kcm_port=$(free_port 10257)
  start_proc kube-controller-manager "$bindir/kube-controller-manager" \
    --kubeconfig "$lab/admin.kubeconfig" \
    --controllers endpointslice-controller,garbage-collector-controller,serviceaccount-controller \
    --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --cert-dir "$lab/kcm-certs" \
    --endpointslice-updates-batch-period 0s \
    --v=1
  wait_until kube-controller-manager 60 "$lab/kube-controller-manager.pid" "$lab/kube-controller-manager.log" \
    curl -fsSk "https://127.0.0.1:$kcm_port/healthz"

  cat >"$lab/lab.env" <<EOF
export LVS_LAB_DIR=$lab
export KUBECONFIG=$lab/admin.kubeconfig
export LVS_LAB_KUBECONFIG_VM=$lab/admin-vm.kubeconfig
export LVS_LAB_APISERVER=https://127.0.0.1:$api_port
export LVS_LAB_APISERVER_VM=https://$vm_host_ip:$api_port
export LVS_LAB_CA=$pki/ca.crt
export LVS_LAB_SA_ISSUER=$sa_issuer
export LVS_LAB_ETCD=$etcd_url
export KUBECACHEDIR=$lab/kube-cache
export PATH=$bindir:\$PATH
EOF
  log "up: apiserver https://127.0.0.1:$api_port (guests: https://$vm_host_ip:$api_port), etcd $etcd_url"
  print_env
}

stop_proc() { lvs_proc_stop "$lab/$1.pid"; }

cmd_down() {
  [[ -d $lab ]] || { log "down: no lab at $lab"; return 0; }
  stop_proc kube-controller-manager
  stop_proc kube-apiserver
  stop_proc etcd
  rm -rf "$lab/etcd-data"
  rm -f "$lab/lab.env"
  log "down: stopped (logs kept in $lab)"
}

# stop-apiserver / start-apiserver: take the API server away and bring the same
# one back (same port, certificates and etcd), for outage scenarios.
cmd_stop_apiserver() {
  [[ -f $lab/kube-apiserver.args ]] || die "no lab at $lab (run: lab.sh up)"
  stop_proc kube-apiserver
  log "kube-apiserver stopped (etcd still running)"
}

cmd_start_apiserver() {
  [[ -f $lab/kube-apiserver.args ]] || die "no lab at $lab (run: lab.sh up)"
  pid_alive "$lab/kube-apiserver.pid" && die "kube-apiserver is already running"
  pid_alive "$lab/etcd.pid" || die "etcd is not running; run: lab.sh down && lab.sh up"
  local port
  port=$(awk 'prev == "--secure-port" {print} {prev = $0}' "$lab/kube-apiserver.args")
  echo "=== restarted $(date -u +%FT%TZ)" >>"$lab/kube-apiserver.log"
  start_apiserver_proc
  wait_apiserver_ready "$port"
  log "kube-apiserver running again on port $port"
}

cmd_status() {
  local n
  for n in etcd kube-apiserver kube-controller-manager; do
    if pid_alive "$lab/$n.pid"; then echo "$n: running (pid $(cat "$lab/$n.pid"))"; else echo "$n: stopped"; fi
  done
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  env) print_env ;;
  status) cmd_status ;;
  stop-apiserver) cmd_stop_apiserver ;;
  start-apiserver) cmd_start_apiserver ;;
  *) die "usage: lab.sh up|down|env|status|stop-apiserver|start-apiserver" ;;
esac
