# Guest side of run-suite.sh: run the named scenarios one after another, each
# on a fresh topology, and report each result on the data channel:
#   @@RESULT PASS <name>   |   @@RESULT FAIL <name>: <why>
# Each scenario's output goes to /out/logs/<name>.log; on failure the kernel
# log of that scenario and the agents' logs are appended and the file is sent
# at once (the rest goes at the end of the run).
#   suite.sh NAME...
# shellcheck shell=sh
. /lab/lib.sh
. /lab/topology.sh
. /lab/agent.sh

SCENARIO_TIMEOUT="${LAB_SCENARIO_TIMEOUT:-120}"
# scenario_timeout FILE: the scenario's own `# lab-timeout: SECS` line (for
# the few that need longer under TCG), or LAB_SCENARIO_TIMEOUT if larger.
scenario_timeout() {
    _t="$(sed -n 's/^# lab-timeout: *\([0-9][0-9]*\).*/\1/p' "$1" | head -n 1)"
    [ -n "$_t" ] && [ "$_t" -gt "$SCENARIO_TIMEOUT" ] && { echo "$_t"; return; }
    echo "$SCENARIO_TIMEOUT"
}
mkdir -p /out/logs
status=0
for name in "$@"; do
    f="/lab/scenarios/$name.sh"
    log="/out/logs/$name.log"
    pid=""
    # Per scenario: a stray writer from an earlier one cannot touch it.
    why="/tmp/why.$name"
    rm -f "$why"
    dmesg -c >/dev/null 2>&1
    export LAB_SCENARIO="$name"
    t0="$(cut -d' ' -f1 /proc/uptime)"
    echo "--- $name (uptime ${t0}s)"
    if [ ! -f "$f" ]; then
        echo "no such scenario $f" >"$log"; echo "no such scenario" >"$why"; rc=2
    else
        # Its own session and process group, so that a timeout kills every
        # process it started (pipelines and subshells included), not just sh.
        LAB_WHY_FILE="$why" setsid sh "$f" >"$log" 2>&1 &
        pid=$!
        limit="$(scenario_timeout "$f")"
        deadline=$(( $(date +%s) + limit ))
        while pid_running "$pid" && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
        if pid_running "$pid"; then
            kill -KILL "-$pid" 2>/dev/null; wait "$pid" 2>/dev/null
            echo "Killed: timed out after ${limit}s" >>"$log"
            rc=137
        else
            wait "$pid"; rc=$?
        fi
    fi
    # The scenario's kernel messages, before teardown adds its own; without the
    # routine link and bridge-port chatter.
    dmesg 2>/dev/null | grep -Ev 'entered (blocking|forwarding|disabled|learning|listening) state|promiscuous mode|ADDRCONF\(NETDEV_(CHANGE|UP)\)' \
        | tail -n 60 >/tmp/dmesg.scenario
    # Clean up whatever the scenario left behind, timed out or not: agents
    # first (gracefully), then anything left in its process group.
    agent_stop_all
    [ -n "${pid:-}" ] && kill -KILL "-$pid" 2>/dev/null
    topo_down
    rm -rf /run/lab
    t1="$(cut -d' ' -f1 /proc/uptime)"
    if [ "$rc" -eq 0 ]; then
        echo "--- PASS $name (${t0}s -> ${t1}s)"
        lab_channel_send "@@RESULT PASS $name"
        continue
    fi
    status=1
    if [ -s "$why" ]; then
        reason="$(head -n1 "$why")"
    elif [ "$rc" -eq 137 ]; then
        reason="timed out after ${limit}s"
    else
        reason="exited with status $rc without a reason (last line: $(tail -n1 "$log"))"
    fi
    {
        echo "--- kernel log during $name (last 60 lines, link chatter removed):"
        cat /tmp/dmesg.scenario
        for a in "/out/agents/$name"/*.log; do
            [ -f "$a" ] || continue
            echo "--- agent log $(basename "$a" .log) (last 80 lines):"
            tail -n 80 "$a"
        done
    } >>"$log"
    echo "--- FAIL $name: $reason (${t0}s -> ${t1}s)"
    lab_emit_file "$log" "logs/$name.log"
    lab_channel_send "@@RESULT FAIL $name: $reason"
done
exit "$status"
