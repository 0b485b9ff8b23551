# Shared scenario runner (bash), sourced by each lab's run-suite.sh after it
# has started its lab:
#
#   SC_LAB_API=<file defining the lab API> SC_LOG_DIR=<dir> sc_run_suite [REGEX]
#
# Every e2e/scenarios/[0-9]*.sh registers scenarios with `scenario NAME FUNCTION`.
# Each scenario runs in its own bash process (run-one.sh) under `timeout`
# (SC_TIMEOUT, default 300 s), which kills its whole process group on expiry.
# Output on stdout: `PASS NAME` or `FAIL NAME: WHY` per scenario, `INFO ...`
# figures, and as the last line `N passed, M failed` (sc_summary). The
# scenario's own output goes to SC_LOG_DIR/NAME.log.
# shellcheck shell=bash

SC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SC_PASSED=0
SC_FAILED=0

sc_pass_line() { echo "PASS $1"; SC_PASSED=$((SC_PASSED + 1)); }
sc_fail_line() { echo "FAIL $1: $2"; SC_FAILED=$((SC_FAILED + 1)); }
sc_summary() { echo "$SC_PASSED passed, $SC_FAILED failed"; }

# sc_list: "NAME FUNCTION" lines of every registered scenario, in file order.
sc_list() {
  (
    scenario() { echo "$1 $2"; }
    for f in "$SC_DIR"/[0-9]*.sh; do
      # shellcheck source=/dev/null
      . "$f"
    done
  )
}

sc_run_suite() {
  local filter=${1:-} name fn rc why t0 log
  : "${SC_LAB_API:?}" "${SC_LOG_DIR:?}"
  mkdir -p "$SC_LOG_DIR"
  while read -r name fn; do
    [[ -z $filter || $name =~ $filter ]] || continue
    log=$SC_LOG_DIR/$name.log
    rm -f "$SC_LOG_DIR/$name.why" "$SC_LOG_DIR/$name.info"
    t0=$SECONDS
    rc=0
    SC_WHY_FILE=$SC_LOG_DIR/$name.why SC_INFO_FILE=$SC_LOG_DIR/$name.info \
      timeout -k 10 "${SC_TIMEOUT:-300}" bash "$SC_DIR/run-one.sh" "$fn" >"$log" 2>&1 </dev/null || rc=$?
    [[ -f $SC_LOG_DIR/$name.info ]] && cat "$SC_LOG_DIR/$name.info"
    if ((rc == 0)); then
      sc_pass_line "$name"
    else
      why=$(head -n 1 "$SC_LOG_DIR/$name.why" 2>/dev/null)
      if ((rc == 124 || rc == 137)); then
        why="timed out after ${SC_TIMEOUT:-300} s${why:+ ($why)}"
      elif [[ -z $why ]]; then
        why="exit status $rc: $(tail -n 1 "$log")"
      fi
      sc_fail_line "$name" "$why (log: $log)"
    fi
    echo "$name: rc=$rc, $((SECONDS - t0)) s" >>"$SC_LOG_DIR/timings"
  done < <(sc_list)
  ((SC_PASSED + SC_FAILED > 0)) || sc_fail_line suite "no scenario matches '${filter}'"
}
