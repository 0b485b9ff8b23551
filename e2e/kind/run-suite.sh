#!/usr/bin/env bash
# The kind lab's suite: the shared scenarios (e2e/scenarios) on a kind cluster.
# Needs Docker, kind, kubectl, helm and the ip_vs/ipip modules loaded on the
# host; see .github/workflows/e2e-kind.yaml.
#
# Usage: run-suite.sh [REGEX]
#   LVS_KEEP_LAB=1  leave the cluster running (stop: e2e/kind/lab.sh down)
#   SC_TIMEOUT      per-scenario limit in seconds (default 300)
# Output: PASS/FAIL per scenario, INFO figures, last line `N passed, M failed`.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
# shellcheck source=../scenarios/runner.sh
. "$here/../scenarios/runner.sh"
runner_init

cleanup() {
  if [[ -z ${LVS_KEEP_LAB:-} ]]; then
    "$here/lab.sh" down >>"$KL_DIR/down.log" 2>&1 || true
  else
    echo "run-suite.sh: cluster left running; eval \"\$($here/lab.sh env)\"; stop: $here/lab.sh down" >&2
  fi
  runner_cleanup
}
trap cleanup EXIT
trap 'runner_stop; runner_fail suite "interrupted"; runner_summary; exit 130' INT TERM

mkdir -p "$KL_DIR"
if ! "$here/lab.sh" up >"$KL_DIR/up.log" 2>&1; then
  tail -n 30 "$KL_DIR/up.log" >&2
  runner_fail lab-up "$(grep -E '^error:' "$KL_DIR/up.log" | tail -n 1) (log: $KL_DIR/up.log)"
  runner_summary
  exit 1
fi
# shellcheck disable=SC1091
. "$KL_DIR/kind.env"
SC_LAB_API="$here/lab-api.sh" SC_LOG_DIR="$KL_DIR/scenarios" sc_run_suite "${1:-}"
kubectl logs -n lvs-system -l app.kubernetes.io/component=agent --tail=-1 --prefix >"$KL_DIR/agents.log" 2>&1 || true
kubectl logs -n lvs-system -l app.kubernetes.io/component=operator --tail=-1 --prefix >"$KL_DIR/operator.log" 2>&1 || true
runner_summary
