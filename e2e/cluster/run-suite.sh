#!/usr/bin/env bash
# Cluster-lab suite: builds the tools, starts a fresh lab, runs every scenario in
# scenarios/*.sh (in file-name order), tears the lab down (also on failure).
#
# Output: one `PASS <name>` or `FAIL <name>: <why>` line per check, then exactly
# `N passed, M failed`. Exit status is non-zero on any failure, including a lab
# that cannot be built or started.
#
# Usage: run-suite.sh [SCENARIO-FILE-PATTERN]   e.g. run-suite.sh 20-crd
#   LVS_KEEP_LAB=1  leave the lab running afterwards (prints its env)
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${LVS_CACHE:-$repo/.cache}
export LVS_LAB_DIR=$cache/cluster-lab/suite-$$
filter=${1:-}

# Every result is one line in $results (shared with the scenario subshells) and
# on fd 3, the real stdout; scenario noise goes to per-scenario logs.
exec 3>&1
mkdir -p "$cache/cluster-lab"
results=$(mktemp "$cache/cluster-lab/results.XXXXXX")
pass() { echo "PASS $1" >>"$results"; echo "PASS $1" >&3; }
fail() { echo "FAIL $1: $2" >>"$results"; echo "FAIL $1: $2" >&3; }
count() { grep -c "^$1 " "$results" || true; }
summary() { echo "$(count PASS) passed, $(count FAIL) failed" >&3; }

lab_started=0 scenario_pid=
cleanup() {
  local rc=$?
  [[ -n $scenario_pid ]] && kill "$scenario_pid" 2>/dev/null
  # Processes a scenario started with start_proc (operators, agents) go first.
  declare -F stop_all_procs >/dev/null && stop_all_procs
  if ((lab_started)) && [[ -z ${LVS_KEEP_LAB:-} ]]; then
    "$here/lab.sh" down >>"$LVS_LAB_DIR/suite.log" 2>&1 || echo "run-suite.sh: lab.sh down failed, see $LVS_LAB_DIR/suite.log" >&2
    if (($(count FAIL) == 0 && rc == 0)); then rm -rf "$LVS_LAB_DIR"; else echo "run-suite.sh: logs kept in $LVS_LAB_DIR" >&2; fi
  elif ((lab_started)); then
    echo "run-suite.sh: lab left running; eval \"\$(LVS_LAB_DIR=$LVS_LAB_DIR $here/lab.sh env)\"" >&2
  fi
  rm -f "$results"
}
trap cleanup EXIT
trap 'fail suite "interrupted"; summary; exit 130' INT TERM

build_log=$cache/cluster-lab/build-tools.log
if "$here/build-tools.sh" >"$build_log" 2>&1; then
  pass lab/build-tools
else
  fail lab/build-tools "$(tail -n 1 "$build_log") (log: $build_log)"
  summary
  exit 1
fi

mkdir -p "$LVS_LAB_DIR"
lab_started=1
if "$here/lab.sh" up >"$cache/cluster-lab/suite-$$.up.log" 2>&1; then
  mv "$cache/cluster-lab/suite-$$.up.log" "$LVS_LAB_DIR/up.log"
  pass lab/up
else
  mkdir -p "$LVS_LAB_DIR" && mv "$cache/cluster-lab/suite-$$.up.log" "$LVS_LAB_DIR/up.log"
  fail lab/up "$(grep 'lab.sh:' "$LVS_LAB_DIR/up.log" | tail -n 1) (log: $LVS_LAB_DIR/up.log)"
  summary
  exit 1
fi
eval "$("$here/lab.sh" env)"
export LVS_REPO=$repo LVS_E2E_CLUSTER=$here
# shellcheck source=versions.sh
source "$here/versions.sh"
export LVS_KUBE_VERSION=$KUBE_VERSION LVS_ETCD_VERSION=$ETCD_VERSION LVS_HELM_VERSION=$HELM_VERSION
export HELM_CACHE_HOME=$LVS_LAB_DIR/helm/cache HELM_CONFIG_HOME=$LVS_LAB_DIR/helm/config HELM_DATA_HOME=$LVS_LAB_DIR/helm/data

# shellcheck source=lib.sh
source "$here/lib.sh"

# Each scenario file registers functions with `scenario NAME FUNCTION`.
scenarios=()
scenario() { scenarios+=("$1:$2"); }
shopt -s nullglob
files=("$here"/scenarios/*.sh)
((${#files[@]})) || { fail suite "no scenario files in $here/scenarios"; summary; exit 1; }
for f in "${files[@]}"; do
  [[ -z $filter || $(basename "$f") == *"$filter"* ]] || continue
  # shellcheck source=/dev/null
  source "$f"
done
((${#scenarios[@]})) || { fail suite "no scenario matches '$filter'"; summary; exit 1; }

mkdir -p "$LVS_LAB_DIR/scenarios"
for s in "${scenarios[@]}"; do
  name=${s%%:*} fn=${s#*:}
  slog=$LVS_LAB_DIR/scenarios/$name.log
  before=$(wc -l <"$results")
  # Each scenario runs in a subshell under `set -e`, in the background so that
  # an interrupt reaches the traps at once instead of after the scenario.
  (
    set -eo pipefail
    exec >"$slog" 2>&1
    "$fn"
  ) &
  scenario_pid=$!
  rc=0
  wait "$scenario_pid" || rc=$?
  scenario_pid=
  if ((rc != 0)); then
    fail "$name" "scenario aborted (exit $rc): $(tail -n 1 "$slog") (log: $slog)"
  elif (($(wc -l <"$results") == before)); then
    fail "$name" "scenario reported no result (log: $slog)"
  fi
done

summary
(($(count FAIL) == 0))
