# TUN variants end to end: GUE (fou port, needs `modprobe fou`), GRE (gre0)
# and IPv6 (ip6tnl0). Each must carry traffic with the replies bypassing the
# director, and removal must leave the realserver as it was: VIP, fou port
# gone, device down again, sysctls restored.
. /lab/scenario.sh
. /lab/agent-lab-common.sh
agent_lab_up
modprobe fou || fail "cannot load fou"
for r in rs4 rs5; do nsx "$r" sysctl -q -w net.ipv4.conf.all.rp_filter=1; done
check() { # check NAME VIP URL DEVICE SERVICE
    for r in rs4 rs5; do rs_node "$1-$r" "$1" "$r"; once "$r"; [ "$ONCE_RC" = 0 ] || fail "$r: $ONCE_OUT"; done
    once dir1; [ "$ONCE_RC" = 0 ] || fail "dir1: $ONCE_OUT"
    for r in rs4 rs5; do
        expect_eq "device holding $2 on $r" "$4" "$(addr_dev "$r" "$2")"
        once_ok "$r" '{}'
    done
    fetch_dist 10 "$3"
    expect_no_errors
    for r in rs4 rs5; do expect_eq "requests answered by $r" 5 "$(dist_of "$r")"; done
    ipvs_wait_conns dir1 -t "$5" 10
    expect_eq "director OutPkts (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -t "$5" outpkts)"
    manifest_remove "$1"; manifest_remove "$1-rs4"; manifest_remove "$1-rs5"
    for n in rs4 rs5 dir1; do once "$n"; [ "$ONCE_RC" = 0 ] || fail "$n removal: $ONCE_OUT"; done
    for r in rs4 rs5; do
        expect_no_vip "$r" "$2"
        /usr/sbin/ip -n "$r" -o link show "$4" | grep -q ',UP' && fail "$4 on $r is still up"
        expect_eq "all.rp_filter on $r" 1 "$(nsx "$r" sysctl -n net.ipv4.conf.all.rp_filter)"
        grep -q '"sysctls": \[\]' "/run/lab/state/$r/ledger.json" || fail "ledger of $r: $(cat "/run/lab/state/$r/ledger.json")"
    done
    echo "ok: $1"
}
vs gue 203.0.113.30 80 TUN "  tunnel: {type: gue, port: 6080}"
check gue 203.0.113.30 "http://203.0.113.30/" tunl0 203.0.113.30:80
/usr/sbin/ip -n rs4 fou show | grep -q 6080 && fail "fou port 6080 still open on rs4"
vs gre 203.0.113.31 80 TUN "  tunnel: {type: gre}"
check gre 203.0.113.31 "http://203.0.113.31/" gre0 203.0.113.31:80
vs tun6 2001:db8:f::30 80 TUN
check tun6 2001:db8:f::30 "http://[2001:db8:f::30]/" ip6tnl0 "[2001:db8:f::30]:80"
