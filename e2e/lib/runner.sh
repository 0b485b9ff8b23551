# The one scenario runner of the lab suites (bash): the kernel lab
# (e2e/kernel/run-suite.sh), the cluster lab (e2e/cluster/run-suite.sh) and
# the shared scenarios of the joined and kind labs (e2e/scenarios/runner.sh)
# all count and print their results here, so every suite's stdout has the same
# shape:
#
#   PASS <name>                  one line per passed check
#   FAIL <name>: <why>           one line per failed check
#   INFO <text>                  figures a scenario reports (no check)
#   N passed, M failed           the last line (runner_summary)
#
# Usage:
#   runner_init                        once, before anything is reported
#   runner_run [--reports] NAME SECS LOG CMD...
#                                      run one scenario (below)
#   runner_pass NAME, runner_fail NAME WHY
#                                      report one check, from the suite or from a
#                                      scenario's own process (the results file and
#                                      the suite's stdout are inherited)
#   runner_summary                     print the last line; status 0 only when
#                                      something passed and nothing failed
#
# A suite that ran no scenario at all fails (FAIL suite: no scenario ran): an
# empty selection is never a green run.
# shellcheck shell=bash

# runner_init: a fresh results file and fd 3 as the suite's stdout (scenario
# output goes to logs; results go to fd 3).
runner_init() {
  exec 3>&1
  RUNNER_RESULTS=$(mktemp "${TMPDIR:-/tmp}/lvs-runner.XXXXXX")
  export RUNNER_RESULTS
  RUNNER_PID=
}

# runner_pass NAME / runner_fail NAME WHY / runner_info TEXT
runner_pass() { _runner_line "PASS $1"; }
runner_fail() { _runner_line "FAIL $1: $2"; }
runner_info() { echo "INFO $*" >&3; }
_runner_line() {
  : "${RUNNER_RESULTS:?runner_init was not called}"
  echo "$1" >>"$RUNNER_RESULTS"
  echo "$1" >&3
}

# runner_count PASS|FAIL: how many such lines were reported so far.
runner_count() { grep -c "^$1 " "$RUNNER_RESULTS" 2>/dev/null || true; }

# runner_run [--reports] NAME SECS LOG CMD...: run the scenario CMD with stdin
# from /dev/null and its output in LOG, killed with its whole process group
# after SECS seconds (timeout(1) leads one). It runs in the background so that
# the suite's INT/TERM traps fire at once; runner_stop ends it from a trap.
#   The scenario may write the reason of its failure to $RUNNER_WHY_FILE (first
# line) and figures to $RUNNER_INFO_FILE (shown as INFO lines).
#   Without --reports the runner reports NAME: PASS when CMD exits 0, FAIL with
# the reason otherwise. With --reports CMD reports its own checks
# (runner_pass/runner_fail) and the runner adds a FAIL NAME only when CMD
# exits non-zero or reports nothing.
runner_run() {
  local reports=0
  [[ $1 == --reports ]] && { reports=1; shift; }
  local name=$1 secs=$2 log=$3 rc=0 why before
  shift 3
  local whyf=$log.why infof=$log.info
  rm -f "$whyf" "$infof"
  mkdir -p "$(dirname "$log")"
  before=$(wc -l <"$RUNNER_RESULTS")
  RUNNER_WHY_FILE=$whyf RUNNER_INFO_FILE=$infof \
    timeout -k 10 "$secs" "$@" >"$log" 2>&1 </dev/null &
  RUNNER_PID=$!
  wait "$RUNNER_PID" || rc=$?
  RUNNER_PID=
  if [[ -s $infof ]]; then sed 's/^/INFO /' "$infof" >&3; fi
  if ((rc == 0)); then
    if ((!reports)); then
      runner_pass "$name"
    elif (($(wc -l <"$RUNNER_RESULTS") == before)); then
      runner_fail "$name" "scenario reported no result (log: $log)"
    fi
    return 0
  fi
  why=$(head -n 1 "$whyf" 2>/dev/null)
  if ((rc == 124 || rc == 137)); then
    why="timed out after $secs s${why:+ ($why)}"
  elif [[ -z $why ]]; then
    why="exit status $rc: $(grep -v '^[[:space:]]*$' "$log" | tail -n 1)"
  fi
  runner_fail "$name" "$why (log: $log)"
  return 0
}

# runner_stop: end the scenario runner_run is waiting for (from a trap).
runner_stop() {
  [[ -n ${RUNNER_PID:-} ]] && kill -TERM "$RUNNER_PID" 2>/dev/null
  return 0
}

# runner_summary: `N passed, M failed` on the suite's stdout; status 0 only
# when at least one check passed and none failed.
runner_summary() {
  local p f
  (($(runner_count PASS) + $(runner_count FAIL) > 0)) || runner_fail suite "no scenario ran"
  p=$(runner_count PASS) f=$(runner_count FAIL)
  echo "$p passed, $f failed" >&3
  ((f == 0 && p > 0))
}

# runner_cleanup: remove the results file (from the suite's EXIT trap).
runner_cleanup() { rm -f "${RUNNER_RESULTS:-}"; }
