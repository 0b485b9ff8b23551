# The shared scenarios' part of a lab suite (bash), sourced by each lab's
# run-suite.sh (e2e/joined, e2e/kind) after it has started its lab:
#
#   SC_LAB_API=<file defining the lab API> SC_LOG_DIR=<dir> sc_run_suite [REGEX]
#
# Every e2e/scenarios/[0-9]*.sh registers scenarios with `scenario NAME FUNCTION`.
# Each runs in its own bash process (run-one.sh) through the labs' one runner
# (e2e/lib/runner.sh: runner_run), under a limit of SC_TIMEOUT seconds
# (default 300) after which its whole process group is killed. Output on
# stdout: `PASS NAME` or `FAIL NAME: WHY` per scenario, `INFO ...` figures,
# and, from runner_summary, `N passed, M failed` last. The scenario's own
# output goes to SC_LOG_DIR/NAME.log.
# shellcheck shell=bash

SC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/runner.sh
. "$SC_DIR/../lib/runner.sh"

# sc_list: "NAME FUNCTION" lines of every registered scenario, in file order.
# The lab API is loaded first, so a file can register scenarios only where
# the lab has what they need (lab_has).
sc_list() {
  (
    # shellcheck source=/dev/null
    . "${SC_LAB_API:?}"
    scenario() { echo "$1 $2"; }
    for f in "$SC_DIR"/[0-9]*.sh; do
      # shellcheck source=/dev/null
      . "$f"
    done
  )
}

sc_run_suite() {
  local filter=${1:-} name fn t0 rc=0
  : "${SC_LAB_API:?}" "${SC_LOG_DIR:?}"
  mkdir -p "$SC_LOG_DIR"
  while read -r name fn; do
    [[ -z $filter || $name =~ $filter ]] || continue
    t0=$SECONDS
    SC_LAB_API=$SC_LAB_API runner_run "$name" "${SC_TIMEOUT:-300}" "$SC_LOG_DIR/$name.log" \
      bash "$SC_DIR/run-one.sh" "$fn"
    echo "$name: $((SECONDS - t0)) s" >>"$SC_LOG_DIR/timings"
  done < <(sc_list)
  return "$rc"
}
