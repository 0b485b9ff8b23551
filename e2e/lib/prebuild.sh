#!/usr/bin/env bash
# Starts the labs' slow builds in the background at the lowest CPU priority
# and returns at once: the lab image (e2e/image/build.sh, a static release
# build), the cluster-lab tools and Prometheus (e2e/cluster/build-tools.sh).
# `make test` runs it first, so these builds use the CPU that the unit tests
# and the kernel lab's VM leave idle instead of running one after another.
# The suites still build what they need themselves: the image build and each
# tool are under a lock, so a suite waits for the background build of the
# same thing and then finds it done; a failed background build only means the
# suite builds (and reports) it again.
#
#   prebuild.sh          log in $LVS_CACHE/prebuild.log
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

mkdir -p "$LVS_CACHE"
log="$LVS_CACHE/prebuild.log"
nohup nice -n 19 bash -c '
    repo=$1
    "$repo/e2e/image/build.sh" >/dev/null || echo "prebuild: the lab image failed (the kernel lab builds it again)"
    "$repo/e2e/cluster/build-tools.sh" || echo "prebuild: the cluster-lab tools failed (the cluster lab builds them again)"
    "$repo/e2e/cluster/build-tools.sh" prometheus || echo "prebuild: Prometheus failed (the joined lab builds it again)"
    echo "prebuild: done"
' prebuild "$LVS_REPO" >"$log" 2>&1 </dev/null &
lvs_log "prebuild: the lab image, the cluster-lab tools and Prometheus build in the background at nice 19 (pid $!), log $log"
