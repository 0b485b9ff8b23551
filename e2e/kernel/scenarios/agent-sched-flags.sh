# The source-hashing scheduler flags driven by the node agent, with packets:
# for sh (sh-port, sh-fallback) and for mh (mh-port, mh-fallback), each on its
# own NAT UDP service over rs1-rs3 (weight 1, lab-dns answering with its name).
# One client address sends one query per flow, each flow from a new source
# port (a new IPVS connection):
#  - no flag: every flow goes to one realserver W (the address alone is hashed);
#  - <sched>-port (set on the running service): the same address spreads over
#    at least two realservers (the source port is hashed too);
#  - no flag, W at weight 0: the kernel finds W unavailable and schedules
#    nothing, so every flow of that client is refused (ICMP port unreachable:
#    no answer);
#  - <sched>-fallback, W still at weight 0: every flow is answered, none by W,
#    all by one other realserver (the fallback is as sticky as the hash);
#  - <sched>-fallback and <sched>-port, W at weight 0: flows are answered by
#    both other realservers, never by W.
# lab-timeout: 200
. /lab/scenario.sh
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
dns_serve rs1 rs2 rs3

# flags_vs SCHED VIP FLAGS: the NAT VirtualService flags-SCHED on VIP:53/UDP
# with scheduler SCHED and spec.schedulerFlags FLAGS (a flow list).
flags_vs() {
    manifest_vs "flags-$1" "$2" 53 "$1" NAT UDP "schedulerFlags: $3"
}
# flags_rs SCHED RS WEIGHT: RealServer flags-SCHED-RS on RS's address, port 53.
flags_rs() { manifest_rs "flags-$1-$2" "flags-$1" "{address: $(topo_ip4 "$2"), port: 53, weight: $3}"; }
# flags_rules SCHED VIP FLAGS [RS=WEIGHT...]: the service as `ipvsadm -Sn`
# shows it (FLAGS as ipvsadm prints them, comma-separated, or empty); weights
# default to 1.
flags_rules() {
    _s="$1" _v="$2" _f="$3"; shift 3
    echo "-A -u $_v:53 -s $_s${_f:+ -b $_f}"
    for _r in rs1 rs2 rs3; do
        _w=1
        for _rw in "$@"; do [ "${_rw%%=*}" = "$_r" ] && _w="${_rw#*=}"; done
        echo "-a -u $_v:53 -r $(topo_ip4 "$_r"):53 -m -w $_w"
    done
}

# flags_check SCHED VIP SPORT: the five steps above for scheduler SCHED on
# VIP, with client source ports from SPORT on.
flags_check() {
    s="$1" vip="$2" sp="$3"
    flags_vs "$s" "$vip" "[]"
    for r in rs1 rs2 rs3; do flags_rs "$s" "$r" 1; done
    flags_rules "$s" "$vip" "" | ipvs_expect dir1 30

    udp_dist 8 "$vip:53" "$sp"
    expect_no_errors
    expect_sticky
    w="$(dist_winner)"
    echo "$s without flags: every flow of the client goes to $w"

    flags_vs "$s" "$vip" "[$s-port]"
    flags_rules "$s" "$vip" "$s-port" | ipvs_expect dir1 30
    udp_dist 12 "$vip:53" "$((sp + 100))"
    expect_no_errors
    [ "$DIST_DISTINCT" -ge 2 ] || fail "$s-port: 12 flows from one address on 12 source ports all went to one realserver ($DIST_SUMMARY)"
    udp_expect_conn_table dir1 "$vip:53"

    flags_vs "$s" "$vip" "[]"
    flags_rs "$s" "$w" 0
    flags_rules "$s" "$vip" "" "$w=0" | ipvs_expect dir1 30
    udp_dist 4 "$vip:53" "$((sp + 200))"
    expect_eq "$s without fallback, $w at weight 0: flows of the client hashed to $w left unanswered ($DIST_SUMMARY)" 4 "$DIST_ERR"

    flags_vs "$s" "$vip" "[$s-fallback]"
    flags_rules "$s" "$vip" "$s-fallback" "$w=0" | ipvs_expect dir1 30
    udp_dist 8 "$vip:53" "$((sp + 300))"
    expect_no_errors
    expect_eq "$s-fallback: flows answered by $w at weight 0" 0 "$(dist_of "$w")"
    expect_sticky
    echo "$s-fallback with $w at weight 0: every flow of the client goes to $(dist_winner)"

    flags_vs "$s" "$vip" "[$s-fallback, $s-port]"
    flags_rules "$s" "$vip" "$s-fallback,$s-port" "$w=0" | ipvs_expect dir1 30
    udp_dist 12 "$vip:53" "$((sp + 400))"
    expect_no_errors
    expect_eq "$s-fallback,$s-port: flows answered by $w at weight 0" 0 "$(dist_of "$w")"
    expect_eq "$s-fallback,$s-port: realservers that answered 12 flows ($DIST_SUMMARY)" 2 "$DIST_DISTINCT"

    manifest_remove "flags-$s"
    for r in rs1 rs2 rs3; do manifest_remove "flags-$s-$r"; done
    ipvs_expect dir1 30 </dev/null
}

agent_start dir1
flags_check sh 203.0.113.76 24000
flags_check mh 203.0.113.77 25000
agent_alive dir1 || fail "agent on dir1 died"
