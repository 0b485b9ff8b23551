# GRE tunnelling with the GRE checksum (spec.tunnel.checksum.enabled), driven
# by the node agents: as agent-tun-gre, but every packet the director
# encapsulates carries a GRE checksum. The kernel's GRE receive path accepts a
# packet only when its checksum flag matches the receiving device's (`icsum`),
# so the realservers' decapsulating device must expect checksums.
. /lab/scenario.sh
VIP=203.0.113.35
agent_lab_up
tun_strict_rp_filter rs4 rs5
manifest_tun_vs gre-csum "$VIP" "{type: gre, checksum: {enabled: true}}"
for r in rs4 rs5; do manifest_rs_node "gre-csum-$r" gre-csum "$r"; done
for n in dir1 rs4 rs5; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -t $VIP:80 -s rr
-a -t $VIP:80 -r 10.0.2.14:80 -i -w 1 --tun-type gre --tun-csum
-a -t $VIP:80 -r 10.0.2.15:80 -i -w 1 --tun-type gre --tun-csum
RULES
for r in rs4 rs5; do tun_expect_rs "$r" "$VIP" gre0; done
wait_until 15 _holds dir1 "$VIP" || fail "dir1 does not hold $VIP"

# One probe first: without checksums expected on gre0 the realservers drop
# every packet (as rx_crc_errors), and the reason belongs on the FAIL line.
if ! topo_fetch "http://$VIP/" >/dev/null; then
    why=""
    for r in rs4 rs5; do
        crc="$(/usr/sbin/ip -n "$r" -s -s link show gre0 | awk '/RX errors:/ {getline; print $2; exit}')"
        flags="$(/usr/sbin/ip -n "$r" -d link show gre0 | grep -o 'icsum' || echo 'no icsum')"
        why="$why $r: gre0 $flags, rx_crc_errors $crc;"
    done
    fail "no answer through GRE with checksums:$why the kernel drops a GRE packet whose checksum flag differs from the receiving device's icsum, so the realserver's agent must set icsum on gre0 (ip tunnel change gre0 mode gre icsum)"
fi
rx0="$(tun_rx_packets rs5 gre0)"
tun_expect_traffic "$VIP" "http://$VIP/" "$VIP:80" rs4 rs5
rx1="$(tun_rx_packets rs5 gre0)"
[ "$rx1" -gt "$rx0" ] || fail "rs5 decapsulated nothing on gre0 (RX packets $rx0 -> $rx1)"
echo "ok: rs5 decapsulated $((rx1 - rx0)) packets on gre0"

manifest_remove gre-csum; manifest_remove gre-csum-rs4; manifest_remove gre-csum-rs5
ipvs_expect dir1 30 </dev/null
for r in rs4 rs5; do tun_expect_released "$r" "$VIP" gre0; done
