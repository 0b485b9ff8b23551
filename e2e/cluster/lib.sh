# Helpers for scenarios/*.sh (sourced by run-suite.sh; `pass NAME` and
# `fail NAME WHY` report results, everything else a scenario prints is logged).

# first_line TEXT -> the first non-empty line, for one-line failure reasons.
first_line() { grep -m1 -v '^[[:space:]]*$' <<<"$1" || true; }

# error_line TEXT -> the first line that looks like an error, else the first line.
error_line() { grep -m1 -iE 'error|forbidden|denied|invalid' <<<"$1" || first_line "$1"; }

# shellcheck source=../lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/runner.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/runner.sh"

# pass NAME / fail NAME WHY -> report one check (e2e/lib/runner.sh).
pass() { runner_pass "$@"; }
fail() { runner_fail "$@"; }

# retry SECONDS CMD... -> run CMD until it succeeds or SECONDS elapse.
retry() { lvs_retry "$@"; }

# jwt_claims TOKEN -> the decoded JSON payload of a JWT.
jwt_claims() {
  local p
  p=$(cut -d. -f2 <<<"$1" | tr '_-' '/+')
  while (($(printf %s "$p" | wc -c) % 4)); do p+="="; done
  base64 -d <<<"$p"
}

# ensure_namespaces FILE -> create the namespaces FILE's objects live in, so a
# fixture is judged on its own content rather than on a missing namespace.
ensure_namespaces() {
  local ns
  for ns in $(kubectl create --dry-run=client --validate=false -o json -f "$1" 2>/dev/null |
    jq -r 'if .kind == "List" then .items[] else . end | .metadata.namespace // empty' | sort -u); do
    kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
  done
}

# The chart release shared by the control-plane scenarios (helm, rbac,
# agent-admission, operator). ServiceAccount names follow the chart's
# _helpers.tpl: <release>-lvs-operator-{operator,agent}.
lvs_release=lvs
lvs_ns=lvs-system
lvs_chart() { echo "$LVS_REPO/charts/lvs-operator"; }
# The lab's address pool (a chart values file shared by the labs).
lvs_lab_values() { echo "$LVS_REPO/e2e/lib/lab-pool-values.yaml"; }
lvs_sa() { echo "$lvs_release-lvs-operator-$1"; }
lvs_crds=(virtualservices.lvs.lvs-operator.io realservers.lvs.lvs-operator.io lvsnodes.lvs.lvs-operator.io
  lvsaddresspools.lvs.lvs-operator.io lvsnodeprofiles.lvs.lvs-operator.io lvssnapshots.lvs.lvs-operator.io)

# ensure_release -> install the chart as $lvs_release into $lvs_ns unless it is
# installed already, and wait for its CRDs to be Established.
ensure_release() {
  helm status "$lvs_release" -n "$lvs_ns" >/dev/null 2>&1 ||
    helm install "$lvs_release" "$(lvs_chart)" -n "$lvs_ns" --create-namespace -f "$(lvs_lab_values)"
  kubectl wait --for condition=Established --timeout 60s "${lvs_crds[@]/#/crd/}"
}

# kubectl_token TOKEN ARGS... -> kubectl authenticated by a bearer token alone
# (no client certificate, no kubeconfig user).
kubectl_token() {
  local token=$1
  shift
  kubectl --kubeconfig /dev/null --server "$LVS_LAB_APISERVER" --certificate-authority "$LVS_LAB_CA" \
    --token "$token" "$@"
}

# api_patch KUBECONFIG|TOKEN PATH BODY [CONTENT-TYPE] -> one PATCH of PATH
# (e.g. /apis/lvs.lvs-operator.io/v1alpha1/lvsnodes/n1/status) with the
# kubeconfig's (or the given) bearer token, as the binaries send it: `kubectl
# patch` GETs the object first, a verb the chart's ServiceAccounts do not have
# because their code never GETs. Prints the object on success; otherwise
# prints "Error from server (REASON): MESSAGE" as kubectl does and returns 1.
api_patch() {
  local who=$1 path=$2 body=$3 ctype=${4:-application/merge-patch+json} token out code
  if [[ -f $who ]]; then
    token=$(kubectl --kubeconfig "$who" config view --raw -o jsonpath='{.users[0].user.token}')
  else
    token=$who
  fi
  out=$(mktemp)
  code=$(curl -sS -o "$out" -w '%{http_code}' --cacert "$LVS_LAB_CA" -H "Authorization: Bearer $token" \
    -H "Content-Type: $ctype" -X PATCH --data-binary "$body" "$LVS_LAB_APISERVER$path") || code=000
  if [[ $code == 2* ]]; then
    cat "$out"
    rm -f "$out"
    return 0
  fi
  jq -r --arg code "$code" '"Error from server (\(.reason // ("HTTP " + $code))): \(.message // tostring)"' "$out" 2>/dev/null ||
    echo "Error from server (HTTP $code): $(head -c 300 "$out")"
  rm -f "$out"
  return 1
}

# start_proc NAME CMD... -> run CMD in the background with its output in
# $LVS_LAB_DIR/NAME.log and its pid in $LVS_LAB_DIR/procs/NAME.pid; prints the
# pid. run-suite.sh stops whatever is still registered there when it exits.
start_proc() {
  local name=$1
  shift
  lvs_proc_start "$LVS_LAB_DIR/procs/$name.pid" "$LVS_LAB_DIR/$name.log" "$@"
  cat "$LVS_LAB_DIR/procs/$name.pid"
}

# stop_proc NAME [SIGNAL] -> signal a process started by start_proc (TERM by
# default), wait up to 10 s for it to exit (then KILL), and unregister it.
stop_proc() { lvs_proc_stop "$LVS_LAB_DIR/procs/$1.pid" "${2:-TERM}"; }

# stop_all_procs -> stop every process still registered by start_proc.
stop_all_procs() {
  local f
  for f in "$LVS_LAB_DIR"/procs/*.pid; do
    [[ -f $f ]] && stop_proc "$(basename "$f" .pid)"
  done
  return 0
}

# free_port FROM -> the first TCP port from FROM up with no listener.
free_port() { lvs_free_port "$1"; }

# wait_json SECONDS JQ KUBECTL-GET-ARGS... -> poll `kubectl get -o json ARGS`
# until JQ (jq -e) holds; the last JSON seen stays in $wait_last.
wait_json() {
  local timeout=$1 expr=$2 deadline
  shift 2
  deadline=$((SECONDS + timeout))
  while :; do
    wait_last=$(kubectl get -o json "$@" 2>&1) || true
    jq -e "$expr" <<<"$wait_last" >/dev/null 2>&1 && return 0
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# agent_bin -> the node agent to run (LVS_AGENT_BIN, default
# <repo>/target/debug/node-agent); fails with a reason if it is missing.
agent_bin() {
  local b=${LVS_AGENT_BIN:-$LVS_REPO/target/debug/node-agent}
  [[ -x $b ]] || { echo "$b is missing (run: cargo build -p lvs-node-agent, or set LVS_AGENT_BIN)"; return 1; }
  echo "$b"
}
