#!/bin/sh
# Test double for the harness self-test (lab-selftest-agent-harness), NOT a
# node agent: it accepts the node agent's command line and, while it runs,
# loads <config-dir>/<node-name>.ipvsadm (ipvsadm -R syntax) into its
# namespace's IPVS table whenever that file changes. It proves the launcher,
# the log capture and the convergence wait, nothing about the real agent.
config="" node="" state="" resync=5
while [ $# -gt 0 ]; do
    case "$1" in
        --config-dir) config="$2"; shift 2 ;;
        --node-name) node="$2"; shift 2 ;;
        --state-dir) state="$2"; shift 2 ;;
        --resync-interval) resync="$2"; shift 2 ;;
        --listen) shift 2 ;;
        *) echo "fake-agent: unknown argument $1" >&2; exit 2 ;;
    esac
done
[ -n "$config" ] && [ -n "$node" ] && [ -n "$state" ] || { echo "fake-agent: --config-dir, --node-name and --state-dir are required" >&2; exit 2; }
trap 'echo "fake-agent: $node stopping"; exit 0' TERM INT
echo "fake-agent: node=$node config=$config state=$state resync=$resync"
applied=""
while :; do
    f="$config/$node.ipvsadm"
    sum="$(md5sum "$f" 2>/dev/null | cut -d' ' -f1)"
    if [ -n "$sum" ] && [ "$sum" != "$applied" ]; then
        ipvsadm -C && ipvsadm -R <"$f" && echo "fake-agent: applied $f" && applied="$sum"
    fi
    date +%s >"$state/heartbeat"
    sleep 0.3
done
