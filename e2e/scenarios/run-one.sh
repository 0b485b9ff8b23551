# run-one.sh FUNCTION: run one scenario function with the lab API ($SC_LAB_API),
# the shared helpers and every scenario file loaded. Exit status 0 = PASS.
# shellcheck shell=bash
set -uo pipefail
SC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
. "${SC_LAB_API:?SC_LAB_API names the lab API file}"
# shellcheck source=lib.sh
. "$SC_DIR/lib.sh"
scenario() { :; }
for f in "$SC_DIR"/[0-9]*.sh; do
  # shellcheck source=/dev/null
  . "$f"
done
echo "=== $1 ($(lab_name) lab) at $(date -u +%FT%TZ)"
"$1"
rc=$?
echo "=== $1 exit $rc"
exit "$rc"
