# GUE tunnelling driven by the node agents: two VirtualServices with GUE
# encapsulation to rs4, rs5 in the remote subnet, one with the encapsulation
# checksum (port 6080) and one with remote checksum offload (port 6081). The
# realservers' agents open the fou ports (decapsulating to tunl0), put the VIPs
# on tunl0 and relax rp_filter; the director encapsulates; replies bypass it.
# Removing one service releases only its VIP and fou port; removing the last
# leaves the realservers as they were (no fou port, tunl0 down, rp_filter strict).
# lab-timeout: 150
. /lab/scenario.sh
CSUM=203.0.113.32 REMCSUM=203.0.113.33
agent_lab_up
modprobe fou || fail "cannot load fou"
tun_strict_rp_filter rs4 rs5
manifest_tun_vs gue-csum "$CSUM" "{type: gue, port: 6080, checksum: {enabled: true}}"
manifest_tun_vs gue-remcsum "$REMCSUM" "{type: gue, port: 6081, checksum: {remote: true}}"
for app in gue-csum gue-remcsum; do
    for r in rs4 rs5; do manifest_rs_node "$app-$r" "$app" "$r"; done
done
for n in dir1 rs4 rs5; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -t $CSUM:80 -s rr
-a -t $CSUM:80 -r 10.0.2.14:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-a -t $CSUM:80 -r 10.0.2.15:80 -i -w 1 --tun-type gue --tun-port 6080 --tun-csum
-A -t $REMCSUM:80 -s rr
-a -t $REMCSUM:80 -r 10.0.2.14:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
-a -t $REMCSUM:80 -r 10.0.2.15:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
RULES
for r in rs4 rs5; do
    for vip in "$CSUM" "$REMCSUM"; do tun_expect_rs "$r" "$vip" tunl0; done
    for port in 6080 6081; do
        /usr/sbin/ip -n "$r" fou show | grep -q "port $port " \
            || fail "no fou port $port on $r: $(/usr/sbin/ip -n "$r" fou show | tr '\n' ';')"
    done
    echo "ok: $r listens for GUE on 6080 and 6081: $(/usr/sbin/ip -n "$r" fou show | tr '\n' ';')"
done
wait_until 15 addr_held dir1 "$CSUM" || fail "dir1 does not hold $CSUM"

rx0="$(tun_rx_packets rs4 tunl0)"
tun_expect_traffic "$CSUM" "http://$CSUM/" "$CSUM:80" rs4 rs5
tun_expect_traffic "$REMCSUM" "http://$REMCSUM/" "$REMCSUM:80" rs4 rs5
rx1="$(tun_rx_packets rs4 tunl0)"
[ "$rx1" -gt "$rx0" ] || fail "rs4 decapsulated nothing on tunl0 (RX packets $rx0 -> $rx1)"
echo "ok: rs4 decapsulated $((rx1 - rx0)) packets on tunl0"

# One service away: its VIP and fou port go, the other's stay.
manifest_remove gue-csum; manifest_remove gue-csum-rs4; manifest_remove gue-csum-rs5
ipvs_expect dir1 30 <<RULES
-A -t $REMCSUM:80 -s rr
-a -t $REMCSUM:80 -r 10.0.2.14:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
-a -t $REMCSUM:80 -r 10.0.2.15:80 -i -w 1 --tun-type gue --tun-port 6081 --tun-remcsum
RULES
for r in rs4 rs5; do
    wait_until 15 addr_gone "$r" "$CSUM" || fail "$r still holds $CSUM after its RealServer was removed"
    wait_until 5 _fou_closed "$r" 6080 || fail "fou port 6080 still open on $r: $(/usr/sbin/ip -n "$r" fou show | tr '\n' ';')"
    tun_expect_rs "$r" "$REMCSUM" tunl0
    /usr/sbin/ip -n "$r" fou show | grep -q "port 6081 " || fail "fou port 6081 on $r closed with the other service"
done
tun_expect_traffic "$REMCSUM" "http://$REMCSUM/" "$REMCSUM:80" rs4 rs5

# The last one away: the realservers are as they were.
manifest_remove gue-remcsum; manifest_remove gue-remcsum-rs4; manifest_remove gue-remcsum-rs5
ipvs_expect dir1 30 </dev/null
for r in rs4 rs5; do
    tun_expect_released "$r" "$REMCSUM" tunl0
    wait_until 5 _fou_closed "$r" 6081 || fail "fou port 6081 still open on $r: $(/usr/sbin/ip -n "$r" fou show | tr '\n' ';')"
    echo "ok: no fou port left on $r"
done
