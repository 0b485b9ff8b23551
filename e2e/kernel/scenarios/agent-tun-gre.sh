# GRE tunnelling driven by the node agents: the realservers rs4, rs5 hold the
# VIP on gre0 (ip_gre's fallback device, which decapsulates) and relax
# rp_filter; the director encapsulates in GRE; replies bypass it. With
# `checksum: {enabled: true}` the director sends GRE with checksums (tcpdump
# on rs5 sees the flag) and each realserver's agent creates a GRE device
# bound to its address with the input checksum flag, which takes the VIP and
# decapsulates them (gre0 would drop them as CRC errors); without checksums
# again the agents delete those devices. Removal leaves the realservers as
# they were.
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

# GRE checksums: the director sends them, and each realserver receives on a
# device of its agent (local = its address, input checksum flag) instead of
# gre0, which would drop them as CRC errors.
manifest_tun_vs web-gre "$VIP" "{type: gre, checksum: {enabled: true}}"
ipvs_expect dir1 30 <<RULES
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.0.2.14:80 -i -w 1 --tun-type gre --tun-csum
-a -t $VIP:80 -r 10.0.2.15:80 -i -w 1 --tun-type gre --tun-csum
RULES
tun_expect_csum_dev rs4 10.0.2.14 "$VIP"
tun_expect_csum_dev rs5 10.0.2.15 "$VIP"
dev5="$(tun_csum_dev rs5)"
crc() { /usr/sbin/ip -n rs5 -s -s link show "$1" | awk '/RX errors:/ {getline; print $2; exit}'; }
crc0="$(crc gre0)"
rx0="$(tun_rx_packets rs5 "$dev5")"
capture_start /tmp/gre.rs5 rs5 eth0 -v 'ip proto 47'
tun_expect_traffic "$VIP" "http://$VIP/" "$VIP:80" rs4 rs5
gre_csum() { grep -q 'GREv0, Flags \[checksum present\]' /tmp/gre.rs5; }
wait_until 10 gre_csum || fail "no GRE packet with the checksum flag reached rs5: $(head -n 4 /tmp/gre.rs5)"
rx1="$(tun_rx_packets rs5 "$dev5")"
[ "$rx1" -gt "$rx0" ] || fail "rs5 decapsulated nothing on $dev5 (RX packets $rx0 -> $rx1)"
expect_eq "CRC errors on rs5's gre0 while GRE carried checksums" "$crc0" "$(crc gre0)"
expect_eq "CRC errors on rs5's $dev5" 0 "$(crc "$dev5")"
echo "ok: GRE with checksums answered by rs4 and rs5; rs5 decapsulated $((rx1 - rx0)) packets on $dev5, no CRC errors"

# Back without checksums: the agents delete their devices, gre0 again.
manifest_tun_vs web-gre "$VIP" "{type: gre}"
ipvs_expect dir1 30 <<RULES
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.0.2.14:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t $VIP:80 -r 10.0.2.15:80 -i -w 1 --tun-type gre --tun-nocsum
RULES
for r in rs4 rs5; do
    tun_expect_csum_dev_gone "$r"
    tun_expect_rs "$r" "$VIP" gre0
done
fetch_dist 4 "http://$VIP/"
expect_no_errors

manifest_remove web-gre; manifest_remove web-gre-rs4; manifest_remove web-gre-rs5
ipvs_expect dir1 30 </dev/null
for r in rs4 rs5; do tun_expect_released "$r" "$VIP" gre0; done
