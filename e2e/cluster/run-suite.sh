#!/usr/bin/env bash
# Cluster-lab suite: builds the tools, starts a fresh lab, runs every scenario in
# scenarios/*.sh (in file-name order), tears the lab down (also on failure).
#
# Output: one `PASS <name>` or `FAIL <name>: <why>` line per check, then exactly
# `N passed, M failed`. Exit status is non-zero on any failure, including a lab
# that cannot be built or started.
#
# Usage: run-suite.sh [SCENARIO-FILE-REGEX]   e.g. run-suite.sh 20-crd, run-suite.sh "30-helm|70-agent"
#   LVS_KEEP_LAB=1  leave the lab running afterwards (prints its env)
#   LVS_SCENARIO_TIMEOUT  per-scenario limit in seconds (default 2400), after
#                   which the scenario's process group is killed
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${LVS_CACHE:-$repo/.cache}
export LVS_LAB_DIR=$cache/cluster-lab/suite-$$
filter=${1:-}

# shellcheck source=lib.sh
source "$here/lib.sh"
# Every result is a line on the real stdout (fd 3, e2e/lib/runner.sh); scenario
# noise goes to per-scenario logs.
mkdir -p "$cache/cluster-lab"
runner_init
summary() { runner_summary; }

lab_started=0
cleanup() {
  local rc=$?
  runner_stop
  # Processes a scenario started with start_proc (operators, agents) go first.
  stop_all_procs
  if ((lab_started)) && [[ -z ${LVS_KEEP_LAB:-} ]]; then
    "$here/lab.sh" down >>"$LVS_LAB_DIR/suite.log" 2>&1 || echo "run-suite.sh: lab.sh down failed, see $LVS_LAB_DIR/suite.log" >&2
    if (($(runner_count FAIL) == 0 && rc == 0)); then rm -rf "$LVS_LAB_DIR"; else echo "run-suite.sh: logs kept in $LVS_LAB_DIR" >&2; fi
  elif ((lab_started)); then
    echo "run-suite.sh: lab left running; eval \"\$(LVS_LAB_DIR=$LVS_LAB_DIR $here/lab.sh env)\"" >&2
  fi
  runner_cleanup
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

# Each scenario file registers functions with `scenario NAME FUNCTION`.
scenarios=()
scenario() { scenarios+=("$1:$2"); }
shopt -s nullglob
files=("$here"/scenarios/*.sh)
((${#files[@]})) || { fail suite "no scenario files in $here/scenarios"; summary; exit 1; }
for f in "${files[@]}"; do
  [[ -z $filter || $(basename "$f") =~ $filter ]] || continue
  # shellcheck source=/dev/null
  source "$f"
done
((${#scenarios[@]})) || { fail suite "no scenario matches '$filter'"; summary; exit 1; }

# Each scenario function runs in its own bash (run-one.sh) under `set -euo
# pipefail` and reports its own checks; LVS_SCENARIO_TIMEOUT bounds each.
for s in "${scenarios[@]}"; do
  name=${s%%:*} fn=${s#*:}
  runner_run --reports "$name" "${LVS_SCENARIO_TIMEOUT:-2400}" "$LVS_LAB_DIR/scenarios/$name.log" \
    bash "$here/run-one.sh" "$fn"
done

summary
