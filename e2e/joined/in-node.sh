#!/usr/bin/env bash
# in-node.sh NODE CMD [ARG...]: run a command in one node of the running joined
# lab, through the VM's command channel. NODE is client, router, dir1, dir2,
# rs1..rs5, or root (the VM itself). The command's output and exit status are
# this script's. -i forwards stdin.
#
#   e2e/joined/in-node.sh dir1 ipvsadm -Ln
#   e2e/joined/in-node.sh client wget -q -O - http://192.0.2.10:8080/
#   e2e/joined/in-node.sh rs1 ip -o addr show dev lo
#   e2e/joined/in-node.sh root cat /run/lab/logs/dir1.log     # an agent's log
#   e2e/joined/in-node.sh -i dir1 sh <script.sh
#
# LVS_JOINED_DIR selects the lab (default $LVS_CACHE/joined-lab/lab).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
. "$here/lib.sh"
if [[ $# -lt 2 || $1 == -h || $1 == --help ]] && [[ ${1:-} != -i || $# -lt 3 ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
jl_load_env
jl_in_node "$@"
