# Workload of the joined-lab VM (busybox sh, run by e2e/kernel/run-vm.sh).
#
# Builds the kernel lab's topology with the joined lab's addresses (the ones
# examples/*.yaml use), moves one qemu user-mode NIC into each node namespace
# (so every node reaches the host's API server at 10.0.2.2 on its own), starts
# one node agent per node in Kubernetes mode under a supervisor that restarts
# it like a kubelet would, and serves the host's command channel
# (cmd-handler.sh) on the control NIC. Runs until the host asks it to stop
# (touch /run/lab/stop), then stops the agents and exits 0.
#
# Environment (from run-vm.sh --env): TOPO_LAN4, TOPO_REM4, TOPO_VIP4,
# JOINED_AGENT_NODES, JOINED_CMD_PORT, JOINED_AGENT_LOG, JOINED_AGENT_RESYNC,
# JOINED_AGENT_VIP_MODE,
# JOINED_NO_AGENTS, JOINED_RUN_AGENTS (the nodes whose agent runs; default all
# of JOINED_AGENT_NODES), JOINED_HA_ARGS_dir1 and JOINED_HA_ARGS_dir2 (the
# directors' HA flags at start; none by default).
# shellcheck shell=sh
. /lab/lib.sh
. /lab/topology.sh

J=/lab/joined
AGENT_NODES="${JOINED_AGENT_NODES:-dir1 dir2 rs1 rs2 rs3 rs4 rs5}"
CMD_PORT="${JOINED_CMD_PORT:-7000}"
RUN=/run/lab
mkdir -p "$RUN/agents" "$RUN/logs" "$RUN/state"

die() { lab_log "joined: $*"; echo "joined: FATAL $*" >"$RUN/fatal"; exit 1; }

# nic_by_mac MAC: the interface name with that link-layer address.
nic_by_mac() {
    for _d in /sys/class/net/*; do
        [ "$(cat "$_d/address" 2>/dev/null)" = "$1" ] && { basename "$_d"; return 0; }
    done
    return 1
}
nic_mac() { printf '52:54:00:00:01:%02x' "$1"; }

# NICs: 0 is the control NIC (root namespace, command channel), 1.. go to the
# agent nodes in order. qemu user networking gives each its own 10.0.2.0/24
# with the host at 10.0.2.2. They are renamed to vnicN first: the topology
# creates devices named eth0, which must not clash in the root namespace.
_want=1
for n in $AGENT_NODES; do _want=$((_want + 1)); done
_have() {
    _c=0
    for _d in /sys/class/net/eth*; do [ -e "$_d" ] && _c=$((_c + 1)); done
    [ "$_c" -ge "$_want" ]
}
wait_until 20 _have || die "expected $_want NICs, have: $(ls /sys/class/net | tr '\n' ' ')"
i=0
while [ "$i" -lt "$_want" ]; do
    dev="$(nic_by_mac "$(nic_mac "$i")")" || die "no NIC with MAC $(nic_mac "$i")"
    ip link set "$dev" name "vnic$i" || die "renaming $dev"
    i=$((i + 1))
done
ip addr add 10.0.2.15/24 dev vnic0 && ip link set vnic0 up || die "control NIC"

lab_log "joined: topology (lan $TOPO_LAN4.0/24, remote $TOPO_REM4.0/24, VIPs $TOPO_VIP4.0/24)"
topo_up || die "topology did not come up"
# NAT: rs1-rs3 send their replies back through the director. DR replies (source
# = a VIP) must not: the director holds that VIP and would drop them as
# martians, so they take the router like on a real DR segment.
topo_rs_gateway dir1 || die "cannot route rs1-rs3 via dir1"
for n in rs1 rs2 rs3; do
    printf 'rule add from %s.0/24 lookup 100 priority 100\nroute add default via %s.1 table 100\n' \
        "$TOPO_VIP4" "$TOPO_LAN4" | _topo_batch "$n" || die "policy route on $n"
done
for n in dir1 dir2; do
    _topo_sysctl "$n" net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
        net.ipv4.conf.eth0.send_redirects=0 || die "sysctl on $n"
done

i=1
for n in $AGENT_NODES; do
    ip link set "vnic$i" netns "$n" || die "moving vnic$i into $n"
    printf 'link set vnic%s name mgmt0\naddr add 10.0.2.15/24 dev mgmt0\nlink set mgmt0 up\n' "$i" \
        | _topo_batch "$n" || die "mgmt0 in $n"
    i=$((i + 1))
done

# Command channel: one handler process per connection.
nc -ll -p "$CMD_PORT" -e "$J/cmd-handler.sh" </dev/null >"$RUN/logs/cmd-server.log" 2>&1 &
echo $! >"$RUN/cmd-server.pid"

# One supervised agent per node (JOINED_NO_AGENTS=1: none, to debug the lab).
[ -n "${JOINED_HA_ARGS_dir1:-}" ] && printf '%s\n' "$JOINED_HA_ARGS_dir1" >"$RUN/agents/dir1.args"
[ -n "${JOINED_HA_ARGS_dir2:-}" ] && printf '%s\n' "$JOINED_HA_ARGS_dir2" >"$RUN/agents/dir2.args"
[ "${JOINED_NO_AGENTS:-0}" = 1 ] || for n in ${JOINED_RUN_AGENTS:-$AGENT_NODES}; do
    mkdir -p "$RUN/state/$n"
    sh "$J/agent-supervisor.sh" "$n" </dev/null >/dev/null 2>&1 &
    echo $! >"$RUN/agents/$n.supervisor"
done

lab_log "joined: ready (command channel on :$CMD_PORT, agents on: ${JOINED_RUN_AGENTS:-$AGENT_NODES})"
touch "$RUN/ready"
while [ ! -e "$RUN/stop" ]; do sleep 1; done

lab_log "joined: stopping"
for n in $AGENT_NODES; do
    [ -f "$RUN/agents/$n.pid" ] && kill "$(cat "$RUN/agents/$n.pid")" 2>/dev/null
done
sleep 1
kill "$(cat "$RUN/cmd-server.pid")" 2>/dev/null
exit 0
