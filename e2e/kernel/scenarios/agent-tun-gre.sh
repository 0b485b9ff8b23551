# GRE tunnelling driven by the node agents: the realservers rs4, rs5 hold the
# VIP on gre0 (ip_gre's fallback device, which decapsulates) and relax
# rp_filter; the director encapsulates in GRE; replies bypass it. GRE
# checksums: the agent refuses `checksum: {enabled: true}` with gre and keeps
# the service as it was; the reason, shown by hand with dir1's agent stopped:
# GRE packets carrying a checksum (tcpdump on rs5 sees the flag) are dropped
# by gre0 as CRC errors. The restarted agent repairs the destination and
# traffic flows again. Removal leaves the realservers as they were.
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

# GRE checksums: refused, the service stays as it was.
manifest_tun_vs web-gre "$VIP" "{type: gre, checksum: {enabled: true}}"
refused() { grep -q 'checksum.enabled is not supported with tunnel type gre' "$(_agent_logs)/dir1.log"; }
wait_until 20 refused || fail "dir1's agent did not refuse a gre tunnel with checksum.enabled"
ipvs_expect dir1 10 <<RULES
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.0.2.14:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t $VIP:80 -r 10.0.2.15:80 -i -w 1 --tun-type gre --tun-nocsum
RULES
manifest_tun_vs web-gre "$VIP" "{type: gre}"
# Why: with dir1's agent stopped, its destination rs5 set by hand to send
# checksums (rs4 taken out, so every request goes to rs5).
agent_stop dir1
nsx dir1 ipvsadm -e -t "$VIP:80" -r 10.0.2.15:80 -i -w 1 --tun-type gre --tun-csum || fail "ipvsadm refused --tun-csum"
nsx dir1 ipvsadm -d -t "$VIP:80" -r 10.0.2.14:80 || fail "ipvsadm could not delete rs4"
crc() { /usr/sbin/ip -n rs5 -s -s link show gre0 | awk '/RX errors:/ {getline; print $2; exit}'; }
crc0="$(crc)"
capture_start /tmp/gre.rs5 rs5 eth0 -v 'ip proto 47'
fetch_dist 4 "http://$VIP/"
expect_eq "requests answered with GRE checksums ($DIST_SUMMARY)" 0 $((4 - DIST_ERR))
gre_csum() { grep -q 'GREv0, Flags \[checksum present\]' /tmp/gre.rs5; }
wait_until 10 gre_csum || fail "no GRE packet with the checksum flag reached rs5: $(head -n 4 /tmp/gre.rs5)"
crc1="$(crc)"
[ "$crc1" -gt "$crc0" ] || fail "gre0 on rs5 counted no CRC errors for checksummed GRE ($crc0 -> $crc1)"
echo "ok: rs5 received GRE with checksums and gre0 dropped them as CRC errors ($crc0 -> $crc1)"
# The agent, back, repairs its destinations; traffic flows again.
agent_start dir1
ipvs_expect dir1 30 <<RULES
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.0.2.14:80 -i -w 1 --tun-type gre --tun-nocsum
-a -t $VIP:80 -r 10.0.2.15:80 -i -w 1 --tun-type gre --tun-nocsum
RULES
fetch_dist 4 "http://$VIP/"
expect_no_errors

manifest_remove web-gre; manifest_remove web-gre-rs4; manifest_remove web-gre-rs5
ipvs_expect dir1 30 </dev/null
for r in rs4 rs5; do tun_expect_released "$r" "$VIP" gre0; done
