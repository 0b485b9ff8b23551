#!/usr/bin/env bash
# run-one.sh FUNCTION: run one cluster-lab scenario function, with lib.sh and
# every scenario file loaded, under `set -euo pipefail`. run-suite.sh calls it
# through e2e/lib/runner.sh (runner_run --reports) with the lab's environment
# exported; the function reports its checks with `pass` and `fail`.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"
scenario() { :; }
for f in "$here"/scenarios/*.sh; do
  # shellcheck source=/dev/null
  source "$f"
done
echo "=== $1 at $(date -u +%FT%TZ)"
"$1"
