# Prelude for lab scenarios: `. /lab/scenario.sh` at the top of each one.
# A scenario is a busybox sh script in /lab/scenarios/<name>.sh that builds the
# topology, drives it and exits 0 on success; fail "<why>" ends it with the
# reason shown on the suite's FAIL line. The suite tears the topology down and
# stops agents afterwards, also when the scenario timed out.
# shellcheck shell=sh
. /lab/lib.sh
. /lab/topology.sh
. /lab/checks.sh
. /lab/agent.sh
. /lab/health.sh
