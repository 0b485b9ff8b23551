# GRE tunnelling driven by the node agents: the realservers rs4, rs5 hold the
# VIP on gre0 (ip_gre's fallback device, which decapsulates) and relax
# rp_filter; the director encapsulates in GRE; replies bypass it. Removal
# leaves the realservers as they were.
. /lab/scenario.sh
VIP=203.0.113.34
agent_lab_up
tun_strict_rp_filter rs4 rs5
manifest_tun_vs web-gre "$VIP" "{type: gre}"
for r in rs4 rs5; do manifest_rs_node "web-gre-$r" web-gre "$r"; done
for n in dir1 rs4 rs5; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.0.2.14:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t $VIP:80 -r 10.0.2.15:80 -i -w 1 --tun-type gre --tun-nocsum
RULES
for r in rs4 rs5; do tun_expect_rs "$r" "$VIP" gre0; done
wait_until 15 addr_held dir1 "$VIP" || fail "dir1 does not hold $VIP"

rx0="$(tun_rx_packets rs5 gre0)"
tun_expect_traffic "$VIP" "http://$VIP/" "$VIP:80" rs4 rs5
rx1="$(tun_rx_packets rs5 gre0)"
[ "$rx1" -gt "$rx0" ] || fail "rs5 decapsulated nothing on gre0 (RX packets $rx0 -> $rx1)"
echo "ok: rs5 decapsulated $((rx1 - rx0)) packets on gre0"

manifest_remove web-gre; manifest_remove web-gre-rs4; manifest_remove web-gre-rs5
ipvs_expect dir1 30 </dev/null
for r in rs4 rs5; do tun_expect_released "$r" "$VIP" gre0; done
