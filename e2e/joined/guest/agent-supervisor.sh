# agent-supervisor.sh NODE: run the node agent for NODE in its namespace, in
# Kubernetes mode, and restart it when it exits (1 s later), as the kubelet
# restarts a DaemonSet container. The agent's pid is in /run/lab/agents/NODE.pid,
# the number of starts in NODE.starts, its output in /run/lab/logs/NODE.log.
# Extra agent arguments (the HA flags) are read from /run/lab/agents/NODE.args
# at every start, so the lab can switch them and restart the agent. While
# /run/lab/agents/NODE.hold exists a dead agent is not restarted (a node whose
# agent stays down, as in a crash loop's back-off).
# Stops when /run/lab/stop exists.
# shellcheck shell=sh
n="$1"
RUN=/run/lab
log="$RUN/logs/$n.log"
starts=0
while [ ! -e "$RUN/stop" ]; do
    starts=$((starts + 1))
    echo "=== start $starts at $(cut -d' ' -f1 /proc/uptime)s" >>"$log"
    extra=""
    [ -f "$RUN/agents/$n.args" ] && extra="$(cat "$RUN/agents/$n.args")"
    echo "=== extra arguments: ${extra:-none}" >>"$log"
    # env -> ip netns exec -> agent: each execs the next, so $! is the agent.
    # $extra is split into words on purpose (flags without spaces).
    # shellcheck disable=SC2086
    env RUST_LOG="${JOINED_AGENT_LOG:-info}" NO_COLOR=1 RUST_BACKTRACE=1 LVS_VIP_MODE="${JOINED_AGENT_VIP_MODE:-address}" \
        /usr/sbin/ip netns exec "$n" /usr/local/bin/node-agent \
        --kubeconfig "/lab/joined/kubeconfigs/$n.kubeconfig" \
        --node-name "$n" --state-dir "$RUN/state/$n" --proc-sys /proc/sys \
        --resync-interval "${JOINED_AGENT_RESYNC:-30}" --listen 0.0.0.0:9477 $extra \
        >>"$log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" >"$RUN/agents/$n.pid"
    echo "$starts" >"$RUN/agents/$n.starts"
    wait "$pid"
    echo "=== exit status $? at $(cut -d' ' -f1 /proc/uptime)s" >>"$log"
    [ -e "$RUN/stop" ] && break
    while [ -e "$RUN/agents/$n.hold" ] && [ ! -e "$RUN/stop" ]; do sleep 0.2; done
    sleep 1
done
