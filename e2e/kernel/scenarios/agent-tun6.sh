# IPv6 tunnelling driven by the node agents: VIP [2001:db8:f::30]:80 (routed
# by the router to dir1) -> rs4, rs5 in the remote subnet through IPv6-in-IPv6.
# The realservers hold the VIP on ip6tnl0 (ip6_tunnel's fallback device, which
# decapsulates) and reply straight to the client. Then GRE with checksums:
# each realserver's agent receives on an ip6gre device of its own, bound to
# its address with the input checksum flag. Removal releases all of it.
. /lab/scenario.sh
VIP=2001:db8:f::30
agent_lab_up
manifest_tun_vs web-tun6 "$VIP" ""
for r in rs4 rs5; do manifest_rs_node "web-tun6-$r" web-tun6 "$r"; done
for n in dir1 rs4 rs5; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -t [$VIP]:80 -s rr
-a -t [$VIP]:80 -r [2001:db8:2::14]:80 -i -w 1 --tun-type ipip
-a -t [$VIP]:80 -r [2001:db8:2::15]:80 -i -w 1 --tun-type ipip
RULES
for r in rs4 rs5; do tun_expect_rs "$r" "$VIP" ip6tnl0; done
wait_until 15 addr_held dir1 "$VIP" || fail "dir1 does not hold $VIP"

rx0="$(tun_rx_packets rs4 ip6tnl0)"
tun_expect_traffic "$VIP" "http://[$VIP]/" "[$VIP]:80" rs4 rs5
rx1="$(tun_rx_packets rs4 ip6tnl0)"
[ "$rx1" -gt "$rx0" ] || fail "rs4 decapsulated nothing on ip6tnl0 (RX packets $rx0 -> $rx1)"
echo "ok: rs4 decapsulated $((rx1 - rx0)) packets on ip6tnl0"

# GRE with checksums over IPv6: each realserver's agent receives on an ip6gre
# device bound to its address with the input checksum flag.
manifest_tun_vs web-tun6 "$VIP" "{type: gre, checksum: {enabled: true}}"
ipvs_expect dir1 30 <<RULES
-A -t [$VIP]:80 -s rr
-a -t [$VIP]:80 -r [2001:db8:2::14]:80 -i -w 1 --tun-type gre --tun-csum
-a -t [$VIP]:80 -r [2001:db8:2::15]:80 -i -w 1 --tun-type gre --tun-csum
RULES
tun_expect_csum_dev rs4 2001:db8:2::14 "$VIP"
tun_expect_csum_dev rs5 2001:db8:2::15 "$VIP"
dev4="$(tun_csum_dev rs4)"
rx0="$(tun_rx_packets rs4 "$dev4")"
tun_expect_traffic "$VIP" "http://[$VIP]/" "[$VIP]:80" rs4 rs5
rx1="$(tun_rx_packets rs4 "$dev4")"
[ "$rx1" -gt "$rx0" ] || fail "rs4 decapsulated nothing on $dev4 (RX packets $rx0 -> $rx1)"
echo "ok: rs4 decapsulated $((rx1 - rx0)) GRE packets with checksums on $dev4"

manifest_remove web-tun6; manifest_remove web-tun6-rs4; manifest_remove web-tun6-rs5
ipvs_expect dir1 30 </dev/null
for r in rs4 rs5; do
    tun_expect_released "$r" "$VIP" ip6tnl0
    tun_expect_csum_dev_gone "$r"
done
