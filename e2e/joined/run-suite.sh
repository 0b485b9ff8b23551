#!/usr/bin/env bash
# The joined lab's suite (make e2e): starts a fresh joined lab (lab.sh up),
# runs the shared scenarios in e2e/scenarios against it, stops the lab.
#
# Usage: run-suite.sh [REGEX]     only the scenarios whose name matches
#   LVS_KEEP_LAB=1   leave the lab running afterwards (stop: LVS_JOINED_DIR=<dir> e2e/joined/lab.sh down)
#   SC_TIMEOUT       per-scenario limit in seconds (default 300)
#   LVS_JOINED_SUITE_DIR  where the suite's lab directory goes (default $LVS_CACHE/joined-lab)
#
# Output: `PASS NAME` / `FAIL NAME: WHY` per scenario, INFO lines with figures,
# and last `N passed, M failed`. Exit status non-zero when anything failed,
# including a lab that does not come up (FAIL lab-up). Logs: the lab directory
# (kept when something failed).
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=../scenarios/runner.sh
. "$here/../scenarios/runner.sh"
runner_init

export LVS_JOINED_DIR="${LVS_JOINED_SUITE_DIR:-$LVS_CACHE/joined-lab}/suite-$$"
filter=${1:-}
t_start=$SECONDS
lab_started=0

cleanup() {
  local rc=$?
  if ((lab_started)) && [[ -z ${LVS_KEEP_LAB:-} ]]; then
    "$here/lab.sh" down >>"$LVS_JOINED_DIR/down.log" 2>&1 || echo "run-suite.sh: lab.sh down failed (log: $LVS_JOINED_DIR/down.log)" >&2
    if (($(runner_count FAIL) == 0 && rc == 0)); then
      rm -rf "$LVS_JOINED_DIR"
    else
      echo "run-suite.sh: logs kept in $LVS_JOINED_DIR" >&2
    fi
  elif ((lab_started)); then
    echo "run-suite.sh: lab left running: eval \"\$(LVS_JOINED_DIR=$LVS_JOINED_DIR $here/lab.sh env)\"; stop: LVS_JOINED_DIR=$LVS_JOINED_DIR $here/lab.sh down" >&2
  fi
  runner_cleanup
}
trap cleanup EXIT
trap 'runner_stop; runner_fail suite "interrupted"; runner_summary; exit 130' INT TERM

# Prometheus for dashboard-queries, when selected: built (or found cached)
# before the lab starts, which is sensitive to load; a failed build leaves
# the scenario to fail with its reason.
while read -r name _; do
  if [[ $name == dashboard-queries && (-z $filter || $name =~ $filter) ]]; then
    "$LVS_REPO/e2e/cluster/build-tools.sh" prometheus >&2 || lvs_log "building Prometheus failed: dashboard-queries will fail"
  fi
done < <(SC_LAB_API="$here/lab-api.sh" sc_list)

mkdir -p "$LVS_JOINED_DIR"
lab_started=1
t0=$SECONDS
if ! "$here/lab.sh" up >"$LVS_JOINED_DIR.up.log" 2>&1; then
  mkdir -p "$LVS_JOINED_DIR" && mv "$LVS_JOINED_DIR.up.log" "$LVS_JOINED_DIR/up.log"
  runner_fail lab-up "$(grep -E '^error:' "$LVS_JOINED_DIR/up.log" | tail -n 1) (log: $LVS_JOINED_DIR/up.log)"
  runner_summary
  exit 1
fi
mv "$LVS_JOINED_DIR.up.log" "$LVS_JOINED_DIR/up.log"
lvs_log "joined lab up in $((SECONDS - t0)) s"
jl_load_env

SC_LAB_API="$here/lab-api.sh" SC_LOG_DIR="$LVS_JOINED_DIR/scenarios" sc_run_suite "$filter"
"$here/lab.sh" logs "$LVS_JOINED_DIR/logs" >/dev/null 2>&1 || true
lvs_log "joined suite: $((SECONDS - t_start)) s in all"
runner_summary
