# run-cmd.sh FILE: run the command channel script FILE with the lab's guest
# helpers loaded (ip/modprobe wrappers, topology and traffic helpers).
# shellcheck shell=sh
. /lab/lib.sh
. /lab/topology.sh
. /lab/checks.sh
_f="$1"
shift
# shellcheck disable=SC1090
. "$_f"
