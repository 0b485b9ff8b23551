# Node-agent harness for lab scenarios (busybox sh): one agent per node
# namespace, all reading the same manifest directory, in standalone mode:
#
#   ip netns exec NODE node-agent --config-dir DIR --node-name NODE \
#       --state-dir DIR [--resync-interval SECS]
#
# The binary comes into the VM with `run-vm.sh --add <path>:/usr/local/bin/node-agent`
# (run-suite.sh does this for agent-* scenarios). LAB_AGENT_BIN overrides it.
# shellcheck shell=sh

LAB_AGENT_BIN="${LAB_AGENT_BIN:-/usr/local/bin/node-agent}"
LAB_MANIFESTS="${LAB_MANIFESTS:-/run/lab/manifests}"
LAB_AGENT_RUN=/run/lab/agents
# Agent logs: /out/agents/<scenario>/<node>.log
_agent_logs() { echo "/out/agents/${LAB_SCENARIO:-adhoc}"; }
# Resync period handed to the agents, seconds.
LAB_AGENT_RESYNC="${LAB_AGENT_RESYNC:-5}"
# Log filter for the agents (tracing EnvFilter syntax).
LAB_AGENT_LOG="${LAB_AGENT_LOG:-info}"

# --- manifests ------------------------------------------------------------------

# manifest_write NAME: store stdin as $LAB_MANIFESTS/NAME.yaml, atomically (the
# agents watch the directory and must never see half a file).
manifest_write() {
    mkdir -p "$LAB_MANIFESTS"
    cat >"$LAB_MANIFESTS/.$1.yaml.tmp" && mv "$LAB_MANIFESTS/.$1.yaml.tmp" "$LAB_MANIFESTS/$1.yaml"
}
manifest_remove() { rm -f "$LAB_MANIFESTS/$1.yaml"; }

# manifest_node NODE [LABEL=VALUE...]: a v1 Node for a lab node, with its
# addresses as InternalIP (IPv4 first) and the labels given plus
# kubernetes.io/hostname and lab.lvs-operator.io/node.
manifest_node() {
    _node="$1"; shift
    {
        echo "apiVersion: v1"
        echo "kind: Node"
        echo "metadata:"
        echo "  name: $_node"
        echo "  labels:"
        echo "    kubernetes.io/hostname: $_node"
        echo "    lab.lvs-operator.io/node: $_node"
        for _kv in "$@"; do echo "    ${_kv%%=*}: \"${_kv#*=}\""; done
        echo "status:"
        echo "  addresses:"
        echo "  - type: InternalIP"
        echo "    address: $(topo_ip4 "$_node")"
        echo "  - type: InternalIP"
        echo "    address: $(topo_ip6 "$_node")"
        echo "  - type: Hostname"
        echo "    address: $_node"
    } | manifest_write "node-$_node"
}

# manifest_lab_nodes: Node objects for the lab's nodes. dir1 carries the
# director label the examples select on (lvs.lvs-operator.io/director=true);
# dir2 does not, so a scenario adds it when it wants two directors. Every node
# has lab.lvs-operator.io/node=<name> for selecting one node exactly.
manifest_lab_nodes() {
    manifest_node dir1 lvs.lvs-operator.io/director=true lab.lvs-operator.io/role=director
    manifest_node dir2 lab.lvs-operator.io/role=director
    for _n in $TOPO_REALSERVERS; do manifest_node "$_n" lab.lvs-operator.io/role=realserver; done
}

# --- agents -----------------------------------------------------------------------

# agent_start NODE [EXTRA_ARG...]: start the agent in NODE's namespace (via
# `ip netns exec`, so /sys matches the namespace). Its output goes to
# /out/agents/<scenario>/NODE.log, appended across restarts.
agent_start() {
    _node="$1"; shift
    [ -x "$LAB_AGENT_BIN" ] || fail "node agent binary $LAB_AGENT_BIN is missing in the VM"
    mkdir -p "$LAB_AGENT_RUN" "$(_agent_logs)" "$LAB_MANIFESTS" "/run/lab/state/$_node"
    echo "=== agent start $(cut -d' ' -f1 /proc/uptime)s: $*" >>"$(_agent_logs)/$_node.log"
    # env -> ip netns exec -> agent: each execs the next, so $! is the agent's pid.
    env RUST_LOG="$LAB_AGENT_LOG" RUST_BACKTRACE=1 NO_COLOR=1 /usr/sbin/ip netns exec "$_node" "$LAB_AGENT_BIN" \
        --config-dir "$LAB_MANIFESTS" --node-name "$_node" \
        --state-dir "/run/lab/state/$_node" --resync-interval "$LAB_AGENT_RESYNC" "$@" \
        >>"$(_agent_logs)/$_node.log" 2>&1 &
    _pid=$!
    echo "$_pid" >"$LAB_AGENT_RUN/$_node.pid"
    sleep 0.5
    if ! agent_alive "$_node"; then
        wait "$_pid"; _st=$?
        fail "agent on $_node exited at once with status $_st (last log line: $(grep -v '^=== ' "$(_agent_logs)/$_node.log" | tail -n 1))"
    fi
}

# agent_alive NODE: the agent process started on NODE still runs.
agent_alive() {
    [ -f "$LAB_AGENT_RUN/$1.pid" ] && pid_running "$(cat "$LAB_AGENT_RUN/$1.pid")"
}

# agent_stop NODE [SIGNAL]: stop the agent (default TERM, KILL after 10 s).
agent_stop() {
    _pidf="$LAB_AGENT_RUN/$1.pid"
    [ -f "$_pidf" ] || return 0
    _pid="$(cat "$_pidf")"
    kill "-${2:-TERM}" "$_pid" 2>/dev/null
    wait_until 10 _agent_gone "$_pid" || kill -KILL "$_pid" 2>/dev/null
    rm -f "$_pidf"
    echo "=== agent stopped $(cut -d' ' -f1 /proc/uptime)s (signal ${2:-TERM})" >>"$(_agent_logs)/$1.log"
}
_agent_gone() { ! pid_running "$1"; }

agent_stop_all() {
    for _f in "$LAB_AGENT_RUN"/*.pid; do
        [ -f "$_f" ] && agent_stop "$(basename "$_f" .pid)"
    done
    return 0
}

# agent_lab_up: fresh topology plus the Node manifests.
agent_lab_up() {
    topo_up || fail "topology did not come up"
    manifest_lab_nodes
}

# --- node state -------------------------------------------------------------------

# addr_dev NODE ADDR: the interface of NODE holding ADDR (empty when none).
addr_dev() {
    /usr/sbin/ip -n "$1" -o addr show | awk -v a="$2" '{ split($4, p, "/"); if (p[1] == a) { print $2; exit } }'
}
# addr_held NODE ADDR [DEV]: NODE holds ADDR (on DEV when given); a command, so
# that wait_until polls it (an argument "$(addr_dev ...)" is read only once).
addr_held() {
    _held="$(addr_dev "$1" "$2")"
    if [ -n "${3:-}" ]; then [ "$_held" = "$3" ]; else [ -n "$_held" ]; fi
}
addr_gone() { [ -z "$(addr_dev "$1" "$2")" ]; }
expect_vip_on() {
    _dev="$(addr_dev "$1" "$2")"
    [ -n "$_dev" ] || fail "$1 does not hold $2: $(/usr/sbin/ip -n "$1" -o addr show | awk '{print $2, $4}' | tr '\n' ' ')"
    echo "ok: $1 holds $2 on $_dev"
}
expect_no_vip() {
    _dev="$(addr_dev "$1" "$2")"
    [ -z "$_dev" ] || fail "$1 still holds $2 on $_dev"
    echo "ok: $1 does not hold $2"
}
# sysctl_effective NODE IFACE NAME: max(conf.all.NAME, conf.IFACE.NAME), which is
# what the kernel applies for arp_ignore, arp_announce and rp_filter.
sysctl_effective() {
    _a="$(nsx "$1" sysctl -n "net.ipv4.conf.all.$3")"; _i="$(nsx "$1" sysctl -n "net.ipv4.conf.$2.$3")"
    [ "$_a" -gt "$_i" ] && echo "$_a" || echo "$_i"
}

# --- convergence ----------------------------------------------------------------

# ipvs_rules NODE: the node's IPVS table as sorted `ipvsadm -Sn` lines.
ipvs_rules() { nsx "$1" ipvsadm -Sn | LC_ALL=C sort; }

# ipvs_expect NODE SECS: wait until NODE's `ipvsadm -Sn` equals stdin (order
# does not matter; empty stdin means an empty table). Fails the scenario with a
# diff and the agent's last log lines after SECS.
ipvs_expect() {
    _want="/tmp/ipvs-want.$1"; _got="/tmp/ipvs-got.$1"
    grep -v '^[[:space:]]*$' | LC_ALL=C sort >"$_want"
    _deadline=$(( $(date +%s) + $2 ))
    while :; do
        ipvs_rules "$1" >"$_got"
        cmp -s "$_want" "$_got" && { echo "ok: ipvs table on $1 converged"; return 0; }
        [ "$(date +%s)" -lt "$_deadline" ] || break
        sleep 0.5
    done
    echo "ipvs table on $1 after $2 s (--- expected, +++ actual):"
    diff -u "$_want" "$_got" | sed -n '3,$p'
    [ -f "$(_agent_logs)/$1.log" ] && { echo "last agent log lines on $1:"; tail -n 20 "$(_agent_logs)/$1.log"; }
    fail "ipvs table on $1 did not converge within $2 s"
}

# ipvs_expect_quiet NODE SECS: like ipvs_expect, but returns 1 instead of failing.
ipvs_expect_quiet() { ( LAB_WHY_FILE=/tmp/why.quiet; ipvs_expect "$@" >/dev/null ); }

# --- scheduler scenarios (agent-sched-*) ------------------------------------------

# manifest_vs NAME VIP PORT SCHED FORWARDING [PROTOCOL] [SPEC-LINE...]: a
# VirtualService NAME on VIP:PORT/PROTOCOL (default TCP) with scheduler SCHED
# and FORWARDING (NAT, DR), placed on the labelled directors, selecting the
# RealServers labelled app=NAME; each SPEC-LINE (e.g. "schedulerFlags: [sh-port]")
# is added to its spec.
manifest_vs() {
    _name="$1"
    {
        printf '%s\n' "apiVersion: lvs.lvs-operator.io/v1alpha1" "kind: VirtualService" \
            "metadata: {name: $1, namespace: default}" "spec:" "  address: \"$2\"" "  port: $3" \
            "  protocol: ${6:-TCP}" "  scheduler: $4" "  forwarding: $5" \
            "  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: \"true\"}}}" \
            "  realServerSelector: {matchLabels: {app: $1}}"
        shift 5
        [ $# -gt 0 ] && shift
        for _l in "$@"; do echo "  $_l"; done
    } | manifest_write "$_name"
}

# manifest_sched_vs NAME VIP PORT SCHED: a NAT VirtualService (manifest_vs).
manifest_sched_vs() { manifest_vs "$1" "$2" "$3" "$4" NAT; }

# manifest_sched_rs NAME RS WEIGHT PORT: RealServer NAME-RS for realserver node
# RS (its IPv4 address) on PORT with WEIGHT, labelled app=NAME.
manifest_sched_rs() {
manifest_write "$1-$2" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: $1-$2
  namespace: default
  labels:
    app: $1
spec:
  address: $(topo_ip4 "$2")
  port: $4
  weight: $3
YAML
}

# sched_rules VIP:PORT SCHED RSPORT RS=WEIGHT...: the `ipvsadm -Sn` lines of a
# NAT service, for ipvs_expect.
sched_rules() {
    _svc="$1" _s="$2" _p="$3"; shift 3
    echo "-A -t $_svc -s $_s"
    for _rw in "$@"; do echo "-a -t $_svc -r $(topo_ip4 "${_rw%%=*}"):$_p -m -w ${_rw#*=}"; done
}

# --- tunnel scenarios (agent-tun-*) --------------------------------------------

# manifest_tun_vs NAME VIP TUNNEL: a TUN VirtualService NAME on VIP:80/TCP with
# scheduler rr, on the labelled director (dir1), selecting the RealServers
# labelled app=NAME. TUNNEL is spec.tunnel as a YAML flow mapping, e.g.
# "{type: gue, port: 6080}"; empty for the default (ipip, or ip6ip6 for an
# IPv6 VIP).
manifest_tun_vs() {
    {
        echo "apiVersion: lvs.lvs-operator.io/v1alpha1"
        echo "kind: VirtualService"
        echo "metadata: {name: $1, namespace: default}"
        echo "spec:"
        echo "  address: \"$2\""
        echo "  port: 80"
        echo "  protocol: TCP"
        echo "  scheduler: rr"
        echo "  forwarding: TUN"
        [ -n "${3:-}" ] && echo "  tunnel: $3"
        echo "  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: \"true\"}}}"
        echo "  realServerSelector: {matchLabels: {app: $1}}"
    } | manifest_write "$1"
}

# manifest_rs NAME APP SPEC: RealServer NAME labelled app=APP with the
# flow-style SPEC ("{nodeName: rs1}").
manifest_rs() {
manifest_write "$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: $1, namespace: default, labels: {app: $2}}
spec: $3
YAML
}

# manifest_rs_node NAME APP NODE: RealServer NAME for the lab node NODE (by
# nodeName, so the node's agent prepares it), labelled app=APP.
manifest_rs_node() { manifest_rs "$1" "$2" "{nodeName: $3}"; }

# tun_strict_rp_filter RS...: strict reverse-path filtering, as on hardened
# hosts; the agent has to relax it for the tunnel device and restore it after.
tun_strict_rp_filter() {
    for _r in "$@"; do
        nsx "$_r" sysctl -q -w net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1 \
            net.ipv4.conf.eth0.rp_filter=1 || fail "cannot set rp_filter on $_r"
    done
}

_link_down() { ! /usr/sbin/ip -n "$1" -o link show "$2" | grep -q '[<,]UP[,>]'; }
_rp_filter_is() { [ "$(nsx "$1" sysctl -n net.ipv4.conf.all.rp_filter)" = "$2" ]; }

# tun_expect_rs RS VIP DEVICE: wait (15 s) until the agent on RS holds VIP on
# the tunnel DEVICE, which is up; for an IPv4 VIP the effective rp_filter on
# DEVICE must no longer be strict.
tun_expect_rs() {
    wait_until 15 addr_held "$1" "$2" "$3" \
        || fail "$1 does not hold $2 on $3: $(/usr/sbin/ip -n "$1" -o addr show | awk '{print $2, $4}' | tr '\n' ' ')"
    _link_down "$1" "$3" && fail "$3 on $1 holds $2 but is down: $(/usr/sbin/ip -n "$1" -o link show "$3")"
    echo "ok: $1 holds $2 on $3, which is up"
    case "$2" in
        *:*) ;;
        *)
            _rpf="$(sysctl_effective "$1" "$3" rp_filter)"
            [ "$_rpf" != 1 ] || fail "rp_filter on $1 $3 is still strict (max of all and $3 = 1)"
            echo "ok: effective rp_filter on $1 $3 = $_rpf"
            ;;
    esac
}

# tun_expect_traffic VIP URL SVC RS...: 10 GETs per realserver through the VIP
# from the client, answered round-robin by each RS, with the replies bypassing
# the director (its OutPkts stays 0 once all connections are counted). SVC is
# the service as ipvsadm names it (VIP:80 or [VIP6]:80).
tun_expect_traffic() {
    _vip="$1" _url="$2" _svc="$3"; shift 3
    _n=$(( 10 * $# ))
    fetch_dist "$_n" "$_url"
    expect_no_errors
    for _r in "$@"; do expect_eq "requests answered by $_r (rr)" 10 "$(dist_of "$_r")"; done
    ipvs_wait_conns dir1 -t "$_svc" "$_n"
    expect_eq "director OutPkts of $_svc (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -t "$_svc" outpkts)"
}

# tun_rx_packets RS DEVICE: packets received (decapsulated) on DEVICE in RS.
# tun_csum_dev RS: the device the agent on RS made to receive GRE with a
# checksum (lvsg...), or nothing.
tun_csum_dev() {
    /usr/sbin/ip -n "$1" -o link show | awk -F': ' '$2 ~ /^lvsg/ {sub(/@.*/, "", $2); print $2; exit}'
}
_has_csum_dev() { [ -n "$(tun_csum_dev "$1")" ]; }
_no_csum_dev() { [ -z "$(tun_csum_dev "$1")" ]; }

# tun_expect_csum_dev RS ADDR VIP: wait (15 s) until RS has its agent's GRE
# device bound to local ADDR with the input checksum flag, then it must hold
# VIP, be up and (IPv4) have a loose effective rp_filter.
tun_expect_csum_dev() {
    wait_until 15 _has_csum_dev "$1" \
        || fail "$1 has no checksum GRE device; links: $(/usr/sbin/ip -n "$1" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
    _d="$(tun_csum_dev "$1")"
    _details="$(/usr/sbin/ip -d -n "$1" link show "$_d")"
    case "$_details" in *"local $2 "*) ;; *) fail "$_d on $1 is not bound to local $2: $_details" ;; esac
    case "$_details" in *icsum*) ;; *) fail "$_d on $1 has no input checksum flag: $_details" ;; esac
    echo "ok: $1 receives GRE with checksums on $_d (local $2, icsum)"
    tun_expect_rs "$1" "$3" "$_d"
}

# tun_expect_csum_dev_gone RS: wait (15 s) until the agent on RS deleted its
# checksum GRE device.
tun_expect_csum_dev_gone() {
    wait_until 15 _no_csum_dev "$1" || fail "$1 still has its checksum GRE device $(tun_csum_dev "$1")"
    echo "ok: $1 deleted its checksum GRE device"
}

tun_rx_packets() {
    /usr/sbin/ip -n "$1" -s link show "$2" | awk '/RX:/ {getline; print $2; exit}'
}

# tun_expect_released RS VIP DEVICE: wait (15 s) until the agent on RS has
# released VIP, then DEVICE must be down again and (IPv4) all.rp_filter back
# at the strict value tun_strict_rp_filter set.
tun_expect_released() {
    wait_until 15 addr_gone "$1" "$2" || fail "$1 still holds $2 on $(addr_dev "$1" "$2") after its RealServer was removed"
    wait_until 5 _link_down "$1" "$3" || fail "$3 on $1 is still up after its last VIP was released"
    echo "ok: $1 released $2 and set $3 down"
    case "$2" in
        *:*) ;;
        *)
            wait_until 5 _rp_filter_is "$1" 1 \
                || fail "all.rp_filter on $1 is $(nsx "$1" sysctl -n net.ipv4.conf.all.rp_filter), expected the original 1"
            echo "ok: all.rp_filter on $1 restored to 1"
            ;;
    esac
}
_fou_closed() { ! /usr/sbin/ip -n "$1" fou show | grep -q "port $2 "; }

# ha_pair_setup NAME VIP PORT [AGENT-ARG...]: the standalone HA pair of the
# agent-ha-* scenarios: dir2 labelled a director too, a DR VirtualService NAME
# on VIP:PORT (rr) served by rs1-rs3 (nodeName), their agents, dir1 started
# with --ha-role VIP=active and dir2 with VIP=standby (plus AGENT-ARGs), and
# both programming the same IPVS service (warm standby). Sets RULES to that
# service as `ipvsadm -Sn` shows it.
ha_pair_setup() {
    _name="$1" _vip="$2" _port="$3"
    shift 3
    manifest_node dir2 lvs.lvs-operator.io/director=true lab.lvs-operator.io/role=director
    manifest_vs "$_name" "$_vip" "$_port" rr DR
    for _i in 1 2 3; do manifest_rs_node "$_name-rs$_i" "$_name" "rs$_i"; done
    RULES="-A -t $_vip:$_port -s rr"
    for _i in 1 2 3; do RULES="$RULES
-a -t $_vip:$_port -r 10.0.1.1$_i:$_port -g -w 1"; done
    for _n in rs1 rs2 rs3; do agent_start "$_n"; done
    agent_start dir1 --ha-role "$_vip=active" "$@"
    agent_start dir2 --ha-role "$_vip=standby" "$@"
    for _n in dir1 dir2; do echo "$RULES" | ipvs_expect "$_n" 30; done
}

# --- drain scenarios (drain-*) ----------------------------------------------------

# drain_setup NAME VIP TIMEOUT: a NAT VirtualService NAME on VIP:9000/TCP (rr,
# drain.timeoutSeconds TIMEOUT) on dir1 over the echo servers of rs1 and rs2
# (RealServers NAME-rs1 and NAME-rs2), dir1's agent, and the table converged.
drain_setup() {
    agent_lab_up
    topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_write "$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: $1, namespace: default}
spec:
  address: $2
  port: 9000
  protocol: TCP
  scheduler: rr
  forwarding: NAT
  drain: {timeoutSeconds: $3}
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: $1}}
YAML
    for _r in rs1 rs2; do manifest_sched_rs "$1" "$_r" 1 9000; done
    agent_start dir1
    sched_rules "$2:9000" rr 9000 rs1=1 rs2=1 | ipvs_expect dir1 30
}

# drain_stream_start VIP: a long-lived TCP stream from the client to VIP:9000,
# a line every 0.2 s, echoed back into /tmp/drain-stream.out. Sets
# DRAIN_STREAM_PID (the client's nc), DRAIN_STREAM_DEST (its destination on
# dir1, RIP:9000) and DRAIN_STREAM_RS (the realserver serving it).
drain_stream_start() {
    rm -f /tmp/drain-stream.out /tmp/drain-stream.pid
    nsx client sh -c "(while :; do echo ping; sleep 0.2; done) | nc $1 9000 >/tmp/drain-stream.out 2>&1 & echo \$! >/tmp/drain-stream.pid"
    DRAIN_STREAM_PID="$(cat /tmp/drain-stream.pid)"
    wait_until 10 _drain_stream_dest_known "$1:9000" \
        || fail "the stream is not in dir1's connection table: $(nsx dir1 ipvsadm -Lnc | tr '\n' ';')"
    DRAIN_STREAM_DEST="$(_drain_stream_dest "$1:9000")"
    for _r in rs1 rs2; do
        [ "$(topo_ip4 "$_r"):9000" = "$DRAIN_STREAM_DEST" ] && DRAIN_STREAM_RS="$_r"
    done
    [ -n "${DRAIN_STREAM_RS:-}" ] || fail "the stream went to $DRAIN_STREAM_DEST, neither rs1 nor rs2"
    drain_stream_flows
    echo "ok: the stream flows, served by $DRAIN_STREAM_RS ($DRAIN_STREAM_DEST)"
}
# _drain_stream_dest VIP:PORT: the destination of the established connection
# to VIP:PORT in dir1's connection table.
_drain_stream_dest() {
    nsx dir1 ipvsadm -Lnc | awk -v v="$1" '$3 == "ESTABLISHED" && $5 == v { print $6; exit }'
}
_drain_stream_dest_known() { [ -n "$(_drain_stream_dest "$1")" ]; }
_drain_stream_lines() { wc -l </tmp/drain-stream.out; }
_drain_stream_grew() { [ "$(_drain_stream_lines)" -gt "$1" ]; }
# drain_stream_flows: more lines come back within 5 s.
drain_stream_flows() {
    _n="$(_drain_stream_lines)"
    wait_until 5 _drain_stream_grew "$_n" || fail "the stream stopped flowing ($_n lines echoed; client nc alive: $(pid_running "$DRAIN_STREAM_PID" && echo yes || echo no))"
}
# drain_stream_alive: the client's nc still runs (its connection was not cut).
drain_stream_alive() { pid_running "$DRAIN_STREAM_PID"; }

# drain_new_conns VIP N: N new short connections from the client to VIP:9000,
# each echoing one line back; fails when one is not answered.
drain_new_conns() {
    _i=0
    while [ "$_i" -lt "$2" ]; do
        _got="$(echo "new-$_i" | nsx client nc -w 1 "$1" 9000 2>/dev/null)"
        [ "$_got" = "new-$_i" ] || fail "new connection $_i to $1:9000 was not answered (got '$_got')"
        _i=$((_i + 1))
    done
    echo "ok: $2 new connections to $1:9000 answered"
}

# drain_conns_to VIP:PORT RIP:PORT: entries of dir1's connection table from
# VIP:PORT to RIP:PORT, in any state.
drain_conns_to() {
    nsx dir1 ipvsadm -Lnc | awk -v v="$1" -v d="$2" '$5 == v && $6 == d' | wc -l
}

# drain_log_has NODE TEXT...: every TEXT is on one line of NODE's agent log.
drain_log_has() {
    _log="$(_agent_logs)/$1.log"; shift
    _lines="$(cat "$_log")"
    for _t in "$@"; do _lines="$(printf '%s\n' "$_lines" | grep -F -- "$_t")"; done
    [ -n "$_lines" ]
}

# --- node profiles (IPVS timeouts, director sysctls) ---------------------------

# manifest_profile NAME NODE: an LvsNodeProfile selecting NODE (by
# lab.lvs-operator.io/node) whose spec goes on from stdin (lines indented by
# two spaces, e.g. "  ipvsTimeouts: {udpSeconds: 7}").
manifest_profile() {
    {
        echo "apiVersion: lvs.lvs-operator.io/v1alpha1"
        echo "kind: LvsNodeProfile"
        echo "metadata: {name: $1}"
        echo "spec:"
        echo "  nodeSelector: {matchLabels: {lab.lvs-operator.io/node: $2}}"
        cat
    } | manifest_write "profile-$1"
}

# ipvs_timeouts NODE: NODE's IPVS timeouts as "TCP TCPFIN UDP" seconds, as
# `ipvsadm -L --timeout` prints them.
ipvs_timeouts() { nsx "$1" ipvsadm -L --timeout | awk -F': ' '/^Timeout/ {print $2}'; }
_ipvs_timeouts_are() { [ "$(ipvs_timeouts "$1")" = "$2" ]; }
# expect_ipvs_timeouts NODE SECS "TCP TCPFIN UDP" WHY: within SECS.
expect_ipvs_timeouts() {
    wait_until "$2" _ipvs_timeouts_are "$1" "$3" \
        || fail "$1: ipvsadm -L --timeout shows '$(ipvs_timeouts "$1")' after $2 s, expected '$3' ($4)"
    echo "ok: $1's IPVS timeouts (tcp tcpfin udp) are $3 ($4)"
}

# vs_sysctl NODE NAME: net.ipv4.vs.NAME on NODE.
vs_sysctl() { nsx "$1" cat "/proc/sys/net/ipv4/vs/$2"; }
_vs_sysctl_is() { [ "$(vs_sysctl "$1" "$2")" = "$3" ]; }
# expect_vs_sysctls NODE SECS WHY NAME=VALUE...: each within SECS.
expect_vs_sysctls() {
    _n="$1" _s="$2" _why="$3"; shift 3
    for _kv in "$@"; do
        wait_until "$_s" _vs_sysctl_is "$_n" "${_kv%%=*}" "${_kv#*=}" \
            || fail "$_n: net.ipv4.vs.${_kv%%=*} is $(vs_sysctl "$_n" "${_kv%%=*}"), expected ${_kv#*=} ($_why)"
    done
    echo "ok: $_n has net.ipv4.vs $* ($_why)"
}

# udp_conn NODE SPORT: NODE's IPVS connection entry for the client's UDP
# source port SPORT as "<seconds left> <destination addr:port>" (empty if
# none).
udp_conn() {
    nsx "$1" ipvsadm -Lnc | awk -v s="$(topo_ip4 client):$2" \
        '$1 == "UDP" && $4 == s { split($2, t, ":"); print t[1] * 60 + t[2], $6; exit }'
}
_udp_conn_gone() { [ -z "$(udp_conn "$1" "$2")" ]; }

# --- importers (import-*) ---------------------------------------------------------

# import_apply FORMAT FILE: `kubectl-lvs import FORMAT FILE` (the plugin packed
# by run-suite.sh) into the manifest `import`, for the agents to apply; the
# import's report is printed, indented.
import_apply() {
    command -v kubectl-lvs >/dev/null || fail "kubectl-lvs is missing in the VM (run-suite.sh packs it for import-* scenarios)"
    kubectl-lvs import "$1" "$2" >/tmp/import.yaml 2>/tmp/import.report \
        || fail "kubectl-lvs import $1 $2 failed: $(tail -n 3 /tmp/import.report)"
    sed 's/^/    report: /' /tmp/import.report
    manifest_write import </tmp/import.yaml
}

# import_clear: remove the imported objects and wait until dir1's table is empty.
import_clear() {
    manifest_remove import
    ipvs_expect dir1 30 </dev/null
}

# keepalived_start NODE FILE LOG: keepalived's health checker alone (no VRRP)
# in NODE's namespace on the configuration FILE, not forking, its log in LOG;
# its pid in KEEPALIVED_PID. The binary comes from run-suite.sh.
keepalived_start() {
    command -v keepalived >/dev/null || fail "keepalived is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
    nsenter --net="/run/netns/$1" keepalived --check --dont-fork --log-console --log-detail \
        --use-file="$2" --pid=/run/keepalived.pid --checkers_pid=/run/keepalived-checkers.pid \
        >"$3" 2>&1 &
    KEEPALIVED_PID=$!
}
_keepalived_gone() { ! pid_running "$KEEPALIVED_PID"; }

# keepalived_stop: TERM (keepalived then removes the IPVS rules it added),
# KILL after 20 s.
keepalived_stop() {
    [ -n "${KEEPALIVED_PID:-}" ] || return 0
    kill -TERM "$KEEPALIVED_PID" 2>/dev/null
    if ! wait_until 20 _keepalived_gone; then
        kill -KILL "$KEEPALIVED_PID" 2>/dev/null
        fail "keepalived did not stop within 20 s of TERM"
    fi
    wait "$KEEPALIVED_PID" 2>/dev/null
    KEEPALIVED_PID=""
}
