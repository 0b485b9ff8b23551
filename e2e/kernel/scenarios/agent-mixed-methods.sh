# One VirtualService whose realservers use NAT, DR and TUN at once, driven by
# the node agents: the service forwards with NAT (rs1 by address, routed back
# through dir1), and three RealServers override the method with
# spec.forwarding: rs2 (nodeName) with DR, rs4 and rs5 (nodeName, remote
# subnet) with TUN, rs4 with the default ipip and rs5 with its own
# spec.tunnel (gre): the tunnel type is per destination. The agent on rs2
# puts the VIP on lo, the one on rs4 on the ipip device, the one on rs5 on the
# gre device. 40 GETs through the VIP are answered 10 by each (rr); the
# director's per-destination counters show each reply path: NAT replies pass
# the director (OutPkts > 0 for rs1), DR and TUN replies bypass it (OutPkts 0
# for rs2, rs4 and rs5), and rs4 and rs5 decapsulated the requests on their
# tunnel devices.
. /lab/scenario.sh
VIP=203.0.113.78
agent_lab_up
topo_rs_gateway dir1 rs1 || fail "cannot route rs1 via dir1"

manifest_vs mixed "$VIP" 80 rr NAT
manifest_rs mixed-rs1 mixed "{address: $(topo_ip4 rs1), port: 80}"
manifest_rs mixed-rs2 mixed "{nodeName: rs2, forwarding: DR}"
manifest_rs mixed-rs4 mixed "{nodeName: rs4, forwarding: TUN}"
manifest_rs mixed-rs5 mixed "{nodeName: rs5, forwarding: TUN, tunnel: {type: gre}}"
for n in dir1 rs2 rs4 rs5; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r $(topo_ip4 rs1):80 -m -w 1
-a -t $VIP:80 -r $(topo_ip4 rs2):80 -g -w 1
-a -t $VIP:80 -r $(topo_ip4 rs4):80 -i -w 1 --tun-type ipip
-a -t $VIP:80 -r $(topo_ip4 rs5):80 -i -w 1 --tun-type gre --tun-nocsum
RULES
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
wait_until 15 addr_held rs2 "$VIP" lo || fail "rs2 (DR) does not hold $VIP on lo: $(/usr/sbin/ip -n rs2 -o addr show | awk '{print $2, $4}' | tr '\n' ' ')"
echo "ok: rs2 (DR) holds $VIP on lo"
tun_expect_rs rs4 "$VIP" tunl0
tun_expect_rs rs5 "$VIP" gre0
expect_no_vip rs1 "$VIP"
rx4_before="$(tun_rx_packets rs4 tunl0)" rx5_before="$(tun_rx_packets rs5 gre0)"

fetch_dist 40 "http://$VIP/"
expect_no_errors
for r in rs1 rs2 rs4 rs5; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done
ipvs_wait_conns dir1 -t "$VIP:80" 40
for r in rs1 rs2 rs4 rs5; do
    expect_eq "connections the director sent to $r" 10 "$(ipvs_dest_stat dir1 -t "$VIP:80" "$(topo_ip4 "$r"):80" conns)"
done
nat_out="$(ipvs_dest_stat dir1 -t "$VIP:80" "$(topo_ip4 rs1):80" outpkts)"
[ "$nat_out" -gt 0 ] || fail "OutPkts of the NAT destination rs1 is '$nat_out': its replies did not pass the director"
echo "ok: OutPkts of the NAT destination rs1 = $nat_out (replies through the director)"
expect_eq "OutPkts of the DR destination rs2 (replies bypass the director)" 0 \
    "$(ipvs_dest_stat dir1 -t "$VIP:80" "$(topo_ip4 rs2):80" outpkts)"
for r in rs4 rs5; do
    expect_eq "OutPkts of the TUN destination $r (replies bypass the director)" 0 \
        "$(ipvs_dest_stat dir1 -t "$VIP:80" "$(topo_ip4 "$r"):80" outpkts)"
done
for rd in rs4=tunl0 rs5=gre0; do
    r="${rd%%=*}" dev="${rd#*=}"
    eval "before=\$rx${r#rs}_before"
    after="$(tun_rx_packets "$r" "$dev")"
    [ "$after" -gt "$before" ] || fail "$r $dev received no packets ($before before, $after after): its TUN requests were not decapsulated there"
    echo "ok: $r decapsulated $((after - before)) packets on $dev"
done
for n in dir1 rs2 rs4 rs5; do agent_alive "$n" || fail "agent on $n died"; done
