#!/usr/bin/env bash
# The joined lab: the cluster lab's API server on the host, the chart installed
# with helm, the operator on the host under the chart's ServiceAccount, and the
# kernel lab's VM with one network namespace per node, each running the node
# agent in Kubernetes mode with a token bound to its Node.
#
# Usage: lab.sh up [--no-agents] | down | env | status | logs [DIR]
#   up         build what is missing, start everything, print the environment
#              (eval "$(e2e/joined/lab.sh env)" then use kubectl and in-node.sh)
#   down       stop the VM, the operator and the cluster lab; keep the logs
#   env        print the running lab's environment
#   status     what runs
#   logs [DIR] copy the agents' logs out of the VM into DIR (default <lab>/logs)
#
#   LVS_JOINED_DIR       lab directory (default $LVS_CACHE/joined-lab/lab)
#   NODE_AGENT_BIN       node agent binary (default target/debug/node-agent)
#   LVS_OPERATOR_BIN     operator binary (default target/debug/lvs-operator)
#   KUBECTL_LVS_BIN      kubectl plugin binary (default target/debug/kubectl-lvs); on the
#                        PATH of the lab's environment, with a kubeconfig of its own
#                        (LVS_JOINED_PLUGIN_KUBECONFIG: ServiceAccount kubectl-lvs, bound
#                        only to the chart's plugin ClusterRole)
#   LVS_JOINED_NO_BUILD  1: do not run cargo build
#   LVS_JOINED_VM_TIMEOUT  lifetime limit of the VM in seconds (default 86400)
#   LVS_JOINED_AGENT_LOG   the agents' RUST_LOG (default info)
#   LVS_JOINED_AGENT_VIP_MODE  the agents' --vip-mode (default address)
#   LVS_JOINED_AGENTS      nodes that run an agent (default: all of dir1 dir2 rs1..rs5;
#                          the others still get their NIC, Node and kubeconfig)
#   LVS_JOINED_VM_MEM      the VM's memory in MiB (default 1536)
#   LVS_JOINED_HA          1: the directors' agents (dir1, dir2) start with director
#                          HA on (LVS_JOINED_HA_ARGS); the chart is installed with
#                          ha.enabled=true either way (the agents' Lease Role and
#                          admission policy), and the HA scenarios switch HA on
#                          at run time (lab-api.sh lab_ha_on)
#   LVS_JOINED_HA_ARGS     the agents' HA flags (default: --ha --ha-namespace lvs-system;
#                          LVS_JOINED_HA_ARGS_dir1 / _dir2: one node's)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
cluster="$LVS_REPO/e2e/cluster"
kernel="$LVS_REPO/e2e/kernel"
dir="$(jl_dir)"
release=lvs
ns=lvs-system
plugin_sa=kubectl-lvs
agent_sa=$release-lvs-operator-agent
operator_sa=$release-lvs-operator-operator

T0=$SECONDS
# step MESSAGE: one progress line with the time since `up` began.
step() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }

pid_alive() { lvs_pid_alive "$@"; }
free_port() { lvs_free_port "$1" || lvs_die "no free TCP port from $1 up"; }

# run_logged NAME CMD...: run CMD with its output in $dir/NAME.log; on failure
# show the log's tail and die.
# run_logged NAME CMD...: run CMD with its output in $dir/NAME.log (a line
# every 30 s while it runs); on failure show the log's tail and die.
run_logged() {
  local name=$1 rc=0 ticker
  shift
  (
    t=0
    while sleep 30; do
      t=$((t + 30))
      printf '[%4ds]        ... %s still running (%ds, log: %s)\n' "$((SECONDS - T0))" "$name" "$t" "$dir/$name.log" >&2
    done
  ) &
  ticker=$!
  "$@" >"$dir/$name.log" 2>&1 || rc=$?
  kill "$ticker" 2>/dev/null
  wait "$ticker" 2>/dev/null || true
  if ((rc != 0)); then
    tail -n 20 "$dir/$name.log" >&2
    lvs_die "$name failed (log: $dir/$name.log)"
  fi
}

cmd_up() {
  local agents=1
  [[ ${1:-} == --no-agents ]] && agents=0
  lvs_need_root
  if [[ -f $dir/joined.env ]]; then
    lvs_die "a joined lab is already up in $dir (stop it: e2e/joined/lab.sh down)"
  fi
  rm -rf "$dir"
  mkdir -p "$dir/kubeconfigs"
  # A failed start stops whatever it had started (logs stay in $dir).
  trap 'rc=$?; if ((rc != 0)); then echo "lab.sh: up failed; stopping what it started" >&2; cmd_down; fi' EXIT

  local run_agents
  read -r -a run_agents <<<"${LVS_JOINED_AGENTS:-${JL_AGENT_NODES[*]}}"
  local agent_bin=${NODE_AGENT_BIN:-$LVS_REPO/target/debug/node-agent}
  local operator_bin=${LVS_OPERATOR_BIN:-$LVS_REPO/target/debug/lvs-operator}
  local plugin_bin=${KUBECTL_LVS_BIN:-$LVS_REPO/target/debug/kubectl-lvs}

  # The kernel lab's packages and kernel download alongside the builds.
  step "kernel lab: packages, Debian kernel, initramfs (in the background)"
  "$kernel/setup.sh" --quiet >"$dir/kernel-setup.log" 2>&1 &
  local setup_pid=$!
  if [[ ${LVS_JOINED_NO_BUILD:-0} != 1 ]]; then
    step "cargo build -p lvs-node-agent -p lvs-operator -p lvs-kubectl"
    run_logged cargo-build cargo build --locked -p lvs-node-agent -p lvs-operator -p lvs-kubectl
  fi
  [[ -x $agent_bin ]] || lvs_die "node agent $agent_bin missing (make build)"
  [[ -x $operator_bin ]] || lvs_die "operator $operator_bin missing (make build)"
  # kubectl finds the plugin as kubectl-lvs on the PATH. Without it (a lab
  # for benchmarks, started with release builds of the agent and operator
  # only) the lab runs all the same; `kubectl lvs` then fails saying why.
  mkdir -p "$dir/bin"
  if [[ -x $plugin_bin ]]; then
    ln -sf "$(realpath "$plugin_bin")" "$dir/bin/kubectl-lvs"
  else
    step "no kubectl plugin at $plugin_bin (make build): kubectl lvs is not available in this lab"
  fi
  if ((agents)) && ! "$agent_bin" --help | grep -q -- '--kubeconfig'; then
    lvs_die "$agent_bin has no Kubernetes mode (--kubeconfig); rebuild it"
  fi
  step "cluster lab tools: etcd, kube-apiserver, kube-controller-manager, kubectl, helm (Go; cached after the first build)"
  run_logged build-tools "$cluster/build-tools.sh"
  step "waiting for the kernel lab setup"
  run_logged kernel-setup-wait bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 1; done' _ "$setup_pid"
  wait "$setup_pid" || { tail -n 20 "$dir/kernel-setup.log" >&2; lvs_die "kernel lab setup failed (log: $dir/kernel-setup.log)"; }

  step "cluster lab: etcd + kube-apiserver"
  # Ports away from the cluster lab's defaults (6443, 23790): the API server's
  # port must still be free when the outage scenario starts it again, even if
  # another lab on this machine starts meanwhile.
  LVS_APISERVER_PORT=${LVS_APISERVER_PORT:-$(free_port 16443)} LVS_ETCD_PORT=${LVS_ETCD_PORT:-$(free_port 26790)} \
    LVS_LAB_DIR="$dir/cluster" run_logged cluster-up "$cluster/lab.sh" up
  # shellcheck disable=SC1091
  . "$dir/cluster/lab.env"
  export HELM_CACHE_HOME=$dir/helm/cache HELM_CONFIG_HOME=$dir/helm/config HELM_DATA_HOME=$dir/helm/data

  step "helm install $release charts/lvs-operator -n $ns"
  # The plugin's ServiceAccount gets the chart's plugin ClusterRole and
  # nothing else, so `kubectl lvs` in the scenarios proves that role enough.
  run_logged helm-install helm install "$release" "$LVS_REPO/charts/lvs-operator" -n "$ns" --create-namespace --wait=false \
    --set ha.enabled=true -f "$LVS_REPO/e2e/lib/lab-pool-values.yaml" \
    --set-json "plugin.rbac.subjects=[{\"kind\":\"ServiceAccount\",\"name\":\"$plugin_sa\",\"namespace\":\"$ns\"}]"
  run_logged crds-established kubectl wait --for condition=Established --timeout 60s \
    crd/virtualservices.lvs.lvs-operator.io crd/realservers.lvs.lvs-operator.io crd/lvsnodes.lvs.lvs-operator.io \
    crd/lvsaddresspools.lvs.lvs-operator.io crd/lvsnodeprofiles.lvs.lvs-operator.io crd/lvssnapshots.lvs.lvs-operator.io

  step "Node objects: ${JL_AGENT_NODES[*]} (dir1 is the director)"
  local n
  for n in "${JL_AGENT_NODES[@]}"; do
    local role=realserver
    [[ $n == dir* ]] && role=director
    kubectl create -f - >>"$dir/nodes.log" 2>&1 <<EOF || lvs_die "creating Node $n failed (log: $dir/nodes.log)"
apiVersion: v1
kind: Node
metadata:
  name: $n
  labels:
    kubernetes.io/hostname: $n
    lab.lvs-operator.io/node: $n
    lab.lvs-operator.io/role: $role
EOF
    kubectl patch node "$n" --subresource=status --type=merge >>"$dir/nodes.log" 2>&1 \
      -p "{\"status\":{\"addresses\":[{\"type\":\"InternalIP\",\"address\":\"$(jl_node_ip "$n")\"},{\"type\":\"Hostname\",\"address\":\"$n\"}]}}" ||
      lvs_die "setting the InternalIP of Node $n failed (log: $dir/nodes.log)"
    "$cluster/sa-kubeconfig.sh" --bind-node "$n" "$ns" "$agent_sa" "$dir/kubeconfigs/$n.kubeconfig" "$LVS_LAB_APISERVER_VM" ||
      lvs_die "no agent kubeconfig for $n"
  done
  kubectl label node dir1 lvs.lvs-operator.io/director=true >>"$dir/nodes.log" 2>&1

  step "kubectl plugin kubeconfig (ServiceAccount $ns/$plugin_sa)"
  run_logged plugin-sa kubectl create serviceaccount "$plugin_sa" -n "$ns"
  "$cluster/sa-kubeconfig.sh" "$ns" "$plugin_sa" "$dir/plugin.kubeconfig" || lvs_die "no kubeconfig for the kubectl plugin"

  step "operator on the host (ServiceAccount $ns/$operator_sa)"
  "$cluster/sa-kubeconfig.sh" "$ns" "$operator_sa" "$dir/operator.kubeconfig"
  local op_port
  op_port=$(free_port 18480)
  # Restarted when it exits, as its Deployment would be.
  env POD_NAME=lvs-operator-lab RUST_LOG="${LVS_JOINED_OPERATOR_LOG:-info}" NO_COLOR=1 \
    setsid "$here/supervise.sh" operator "$dir" "$operator_bin" --kubeconfig "$dir/operator.kubeconfig" \
    --namespace "$ns" --listen "127.0.0.1:$op_port" >/dev/null 2>&1 </dev/null &
  echo $! >"$dir/operator.pid"

  local cmd_port
  cmd_port=$(free_port 17000)
  step "VM: kernel lab topology, ${#JL_AGENT_NODES[@]} node NICs + 1 control NIC, agents in Kubernetes mode"
  local vm_env=(--env "TOPO_LAN4=$JL_LAN4" --env "TOPO_REM4=$JL_REM4" --env "TOPO_VIP4=$JL_VIP4"
    --env "JOINED_CMD_PORT=7000" --env "JOINED_AGENT_LOG=${LVS_JOINED_AGENT_LOG:-info}"
    --env "JOINED_AGENT_VIP_MODE=${LVS_JOINED_AGENT_VIP_MODE:-address}")
  if [[ ${LVS_JOINED_HA:-0} == 1 ]]; then
    vm_env+=(--env "JOINED_HA_ARGS_dir1=$(jl_ha_args dir1)" --env "JOINED_HA_ARGS_dir2=$(jl_ha_args dir2)")
  fi
  if ((agents)); then
    vm_env+=(--env "JOINED_AGENT_NODES=${JL_AGENT_NODES[*]}" --env "JOINED_RUN_AGENTS=${run_agents[*]}")
  else
    vm_env+=(--env "JOINED_AGENT_NODES=${JL_AGENT_NODES[*]}" --env "JOINED_NO_AGENTS=1")
  fi
  # Each node's agent metrics (0.0.0.0:9477 in the node, reached through the
  # node's own NIC to the host) on a host port, for a Prometheus on the host.
  local i metrics_fwd=() metrics_targets=() p
  for i in "${!JL_AGENT_NODES[@]}"; do
    p=$(free_port $((19477 + i * 10)))
    metrics_fwd+=(--nic-hostfwd "$((i + 1)):tcp:127.0.0.1:$p-10.0.2.15:9477")
    metrics_targets+=("${JL_AGENT_NODES[$i]}=127.0.0.1:$p")
  done
  setsid "$kernel/run-vm.sh" --out "$dir/vm" --timeout "${LVS_JOINED_VM_TIMEOUT:-86400}" \
    --mem "${LVS_JOINED_VM_MEM:-1536}" --nics $((${#JL_AGENT_NODES[@]} + 1)) --hostfwd "tcp:127.0.0.1:$cmd_port-:7000" \
    "${metrics_fwd[@]}" \
    --add "$agent_bin:/usr/local/bin/node-agent" \
    --add "$here/guest:/lab/joined" --add "$dir/kubeconfigs:/lab/joined/kubeconfigs" \
    "${vm_env[@]}" "$here/guest/vm-main.sh" >"$dir/vm-runner.log" 2>&1 </dev/null &
  echo $! >"$dir/vm-runner.pid"

  cat >"$dir/joined.env" <<EOF
$(cat "$dir/cluster/lab.env")
export LVS_JOINED_DIR=$dir
export LVS_JOINED_CMD_PORT=$cmd_port
export LVS_JOINED_OPERATOR_METRICS=http://127.0.0.1:$op_port/metrics
export LVS_JOINED_AGENT_METRICS="${metrics_targets[*]}"
export HELM_CACHE_HOME=$dir/helm/cache HELM_CONFIG_HOME=$dir/helm/config HELM_DATA_HOME=$dir/helm/data
export PATH=$dir/bin:\$PATH
export LVS_JOINED_PLUGIN_KUBECONFIG=$dir/plugin.kubeconfig
EOF
  export LVS_JOINED_CMD_PORT=$cmd_port

  local deadline=$((SECONDS + 180))
  until LVS_JOINED_CMD_TIMEOUT=10 jl_exec root 'test -e /run/lab/ready' 2>/dev/null; do
    if ! pid_alive "$dir/vm-runner.pid"; then
      tail -n 30 "$dir/vm/console.log" >&2 2>/dev/null || tail -n 30 "$dir/vm-runner.log" >&2
      lvs_die "the VM ended before it was ready (console: $dir/vm/console.log)"
    fi
    if jl_exec root 'test -e /run/lab/fatal' 2>/dev/null; then
      jl_exec root 'cat /run/lab/fatal' >&2 || true
      lvs_die "the VM's setup failed (console: $dir/vm/console.log)"
    fi
    ((SECONDS < deadline)) || lvs_die "the VM's command channel did not come up within 180 s (console: $dir/vm/console.log)"
    sleep 1
  done
  [[ $(cat "$dir/operator.starts" 2>/dev/null) == 1 ]] && pid_alive "$dir/operator.child" ||
    { tail -n 20 "$dir/operator.log" >&2; lvs_die "the operator exited (log: $dir/operator.log)"; }

  if ((agents)); then
    step "waiting for the agents (/readyz in every node, LvsNode reports)"
    deadline=$((SECONDS + 180))
    local pending
    while :; do
      pending=()
      for n in "${run_agents[@]}"; do
        jl_exec "$n" 'wget -q -O /dev/null http://127.0.0.1:9477/readyz' 2>/dev/null || pending+=("$n")
      done
      ((${#pending[@]} == 0)) && break
      if ((SECONDS >= deadline)); then
        for n in "${pending[@]}"; do
          echo "--- agent $n (last lines):" >&2
          jl_exec root "tail -n 5 /run/lab/logs/$n.log" >&2 || true
        done
        lvs_die "agents not ready within 180 s: ${pending[*]}"
      fi
      sleep 1
    done
  fi
  step "waiting for the operator (/readyz, leader Lease)"
  deadline=$((SECONDS + 60))
  until curl -fsS "http://127.0.0.1:$op_port/readyz" >/dev/null 2>&1 &&
    [[ $(kubectl get lease lvs-operator-leader -n "$ns" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null) == lvs-operator-lab ]]; do
    ((SECONDS < deadline)) || { tail -n 20 "$dir/operator.log" >&2; lvs_die "the operator is not ready and leading within 60 s (log: $dir/operator.log)"; }
    sleep 0.5
  done
  trap - EXIT
  step "up: kubectl via KUBECONFIG=$KUBECONFIG, nodes via e2e/joined/in-node.sh NODE CMD..."
  cat "$dir/joined.env"
}

# stop_pid FILE SECS: TERM the process group led by the pid in FILE, KILL it after SECS.
stop_pid() { lvs_proc_stop "$1" TERM "$2"; }

cmd_logs() {
  local out=${1:-$dir/logs} n
  [[ -f $dir/joined.env ]] || lvs_die "no joined lab in $dir"
  jl_load_env
  mkdir -p "$out"
  for n in "${JL_AGENT_NODES[@]}"; do
    jl_exec root "cat /run/lab/logs/$n.log" >"$out/agent-$n.log" 2>/dev/null || true
  done
  echo "$out"
}

cmd_down() {
  [[ -d $dir ]] || { echo "lab.sh: no joined lab in $dir" >&2; return 0; }
  if [[ -f $dir/joined.env ]] && pid_alive "$dir/vm-runner.pid"; then
    cmd_logs "$dir/logs" >/dev/null 2>&1 || true
    # Ask the VM to stop (agents TERM, poweroff), then wait for qemu to end.
    LVS_JOINED_CMD_PORT=$(sed -n 's/^export LVS_JOINED_CMD_PORT=//p' "$dir/joined.env") \
      LVS_JOINED_CMD_TIMEOUT=5 jl_exec root 'touch /run/lab/stop' >/dev/null 2>&1 || true
    local i
    for ((i = 0; i < 60; i++)); do
      pid_alive "$dir/vm-runner.pid" || break
      sleep 0.5
    done
  fi
  stop_pid "$dir/vm-runner.pid" 5
  stop_pid "$dir/operator.pid" 10
  if [[ -f $dir/cluster/lab.env ]]; then
    LVS_LAB_DIR="$dir/cluster" "$cluster/lab.sh" down >>"$dir/cluster-down.log" 2>&1 || true
  fi
  rm -f "$dir/joined.env"
  echo "lab.sh: joined lab stopped (logs in $dir)" >&2
}

cmd_status() {
  local what
  for what in vm-runner operator; do
    if pid_alive "$dir/$what.pid"; then echo "$what: running (pid $(cat "$dir/$what.pid"))"; else echo "$what: stopped"; fi
  done
  [[ -f $dir/operator.starts ]] && echo "operator starts: $(cat "$dir/operator.starts")"
  [[ -d $dir/cluster ]] && LVS_LAB_DIR="$dir/cluster" "$cluster/lab.sh" status
  return 0
}

case ${1:-} in
  up) shift; cmd_up "$@" ;;
  down) cmd_down ;;
  env) [[ -f $dir/joined.env ]] || lvs_die "no joined lab in $dir"; cat "$dir/joined.env" ;;
  status) cmd_status ;;
  logs) shift; cmd_logs "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
