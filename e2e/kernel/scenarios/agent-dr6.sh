# IPv6 direct routing driven by the node agents: RealServers by nodeName
# (rs1-rs3), so their agents put the VIP on lo; the director holds it on eth0.
# The VIP's prefix is on-link on the lan, so the router finds the VIP by
# neighbour discovery, and only the director may answer: Linux answers a
# neighbour solicitation only for an address on the interface it arrived on
# (no sysctl, unlike IPv4's arp_ignore). Checked two ways from the router:
# - unicast solicitations (neighbour unreachability probes) sent to each
#   realserver's MAC reach it and stay unanswered;
# - a multicast solicitation (address resolution) is answered by the
#   director's MAC alone. The VIP 2001:db8:f::11 shares its solicited-node
#   group (ff02::1:ff00:11) with rs1's own address, so rs1's IPv6 stack takes
#   that solicitation in too, rather than filtering it as an unjoined group.
# Then 60 requests spread by wrr 1:2:3 and their replies bypass the director.
. /lab/scenario.sh
VIP=2001:db8:f::11
agent_lab_up
topo_vip6_onlink || fail "cannot put 2001:db8:f::/64 on-link on the router's lan0"
manifest_vs web-dr6 "$VIP" 80 wrr DR
for i in 1 2 3; do manifest_rs "web-dr6-rs$i" web-dr6 "{nodeName: rs$i, weight: $i}"; done
for n in dir1 rs1 rs2 rs3; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -t [$VIP]:80 -s wrr
-a -t [$VIP]:80 -r [2001:db8:1::11]:80 -g -w 1
-a -t [$VIP]:80 -r [2001:db8:1::12]:80 -g -w 2
-a -t [$VIP]:80 -r [2001:db8:1::13]:80 -g -w 3
RULES
for r in rs1 rs2 rs3; do
    wait_until 15 addr_held "$r" "$VIP" lo || true
    expect_eq "interface holding $VIP on $r" lo "$(addr_dev "$r" "$VIP")"
    expect_eq "prefix of $VIP on $r lo (the VIP alone, not its /64)" "$VIP/128" \
        "$(/usr/sbin/ip -n "$r" -6 -o addr show dev lo | awk -v a="$VIP/" 'index($4, a) == 1 {print $4}')"
    expect_eq "proxy_ndp on $r (all)" 0 "$(nsx "$r" sysctl -n net.ipv6.conf.all.proxy_ndp)"
    expect_eq "IPVS rules on realserver $r" "" "$(ipvs_rules "$r")"
done
wait_until 15 addr_held dir1 "$VIP" eth0 || true
expect_eq "interface holding $VIP on dir1" eth0 "$(addr_dev dir1 "$VIP")"

nd_capture_start router lan0
for n in dir1 rs1 rs2 rs3; do nd_capture_start "$n" eth0; done
nsx router sysctl -q -w net.ipv6.neigh.lan0.delay_first_probe_time=1 >/dev/null \
    || fail "cannot shorten the router's neighbour probe delay"

# Unicast solicitations: the router is told the VIP is at the realserver's
# MAC (a stale entry), sends it a packet and then probes it with solicitations
# to that MAC. An answer would make the entry REACHABLE; unanswered, it fails.
for r in rs1 rs2 rs3; do
    mac="$(topo_mac "$r")" in0="$(icmp6_stat "$r" Icmp6InNeighborSolicits)"
    /usr/sbin/ip -n router -6 neigh replace "$VIP" lladdr "$mac" dev lan0 nud stale \
        || fail "cannot point the router's neighbour entry for $VIP at $r"
    nsx router ping -6 -c 1 -W 1 "$VIP" >/dev/null 2>&1
    wait_until 15 _nd_seen_at_least "$r" ns "$VIP" "$(topo_mac router lan0)" "$mac" \
        || fail "no solicitation for $VIP from the router reached $r at its MAC $mac (router entry: $(/usr/sbin/ip -n router -6 neigh show "$VIP" dev lan0))"
    wait_until 15 _neigh_state_is router "$VIP" lan0 FAILED \
        || fail "router's entry for $VIP after probing $r: '$(/usr/sbin/ip -n router -6 neigh show "$VIP" dev lan0)', expected FAILED (no answer)"
    expect_eq "advertisements for $VIP sent by $r to unicast solicitations" 0 "$(nd_seen_count "$r" na "$VIP" "$mac")"
    in1="$(icmp6_stat "$r" Icmp6InNeighborSolicits)"
    [ "$in1" -gt "$in0" ] || fail "$r's ICMPv6 took in no solicitation (Icmp6InNeighborSolicits $in0 -> $in1)"
    echo "ok: $r got $(nd_seen_count "$r" ns "$VIP" "" "$mac") unicast solicitations for $VIP and answered none"
done

# Address resolution: a multicast solicitation, answered by the director alone.
in0="$(icmp6_stat rs1 Icmp6InNeighborSolicits)"
/usr/sbin/ip -n router -6 neigh flush dev lan0
nsx router ping -6 -c 1 -W 2 "$VIP" >/dev/null 2>&1
wait_until 10 _neigh_lladdr_is router "$VIP" lan0 "$(topo_mac dir1)" \
    || fail "router's entry for $VIP: '$(/usr/sbin/ip -n router -6 neigh show "$VIP" dev lan0)', expected dir1's MAC $(topo_mac dir1)"
for n in dir1 rs1 rs2 rs3; do
    wait_until 10 _nd_seen_at_least "$n" ns "$VIP" "$(topo_mac router lan0)" 33:33:ff:00:00:11 \
        || fail "the multicast solicitation for $VIP did not reach $n"
done
in1="$(icmp6_stat rs1 Icmp6InNeighborSolicits)"
[ "$in1" -gt "$in0" ] || fail "rs1's ICMPv6 took in no multicast solicitation (Icmp6InNeighborSolicits $in0 -> $in1)"
wait_until 10 _nd_seen_at_least router na "$VIP" "$(topo_mac dir1)" \
    || fail "the router's capture shows no advertisement of $VIP from dir1"
responders="$(nd_seen router na "$VIP" | awk '{print $1}' | sort -u | tr '\n' ' ' | sed 's/ $//')"
expect_eq "MACs advertising $VIP on the router's lan0" "$(topo_mac dir1)" "$responders"
for r in rs1 rs2 rs3; do
    expect_eq "advertisements for $VIP sent by $r" 0 "$(nd_seen_count "$r" na "$VIP" "$(topo_mac "$r")")"
done

fetch_dist 60 "http://[$VIP]/"
expect_no_errors
expect_eq "requests answered by rs1 (weight 1)" 10 "$(dist_of rs1)"
expect_eq "requests answered by rs2 (weight 2)" 20 "$(dist_of rs2)"
expect_eq "requests answered by rs3 (weight 3)" 30 "$(dist_of rs3)"
ipvs_wait_conns dir1 -t "[$VIP]:80" 60
expect_eq "director OutPkts (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -t "[$VIP]:80" outpkts)"
for n in dir1 rs1 rs2 rs3; do agent_alive "$n" || fail "agent on $n died"; done
