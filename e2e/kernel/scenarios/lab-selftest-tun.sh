# IPv4 tunnelling driven by ipvsadm: VIP 203.0.113.30:80 on dir1 -> rs4, rs5 in
# the remote subnet through ipip. The realservers hold the VIP on tunl0 (ipip's
# fallback device, which decapsulates), relax rp_filter, and reply straight to
# the client through the router: the director's OutPkts stay 0.
. /lab/scenario.sh
VIP=203.0.113.30
topo_up || fail "topology did not come up"
/usr/sbin/ip -n dir1 addr add "$VIP/32" dev eth0
modprobe ipip || fail "modprobe ipip failed"
for r in rs4 rs5; do
    /usr/sbin/ip -n "$r" link show tunl0 >/dev/null 2>&1 || fail "no tunl0 in $r after loading ipip"
    nsx "$r" sysctl -q -w net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
        net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.conf.eth0.rp_filter=0 \
        net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 || fail "sysctl on $r"
    /usr/sbin/ip -n "$r" link set tunl0 up
    /usr/sbin/ip -n "$r" addr add "$VIP/32" dev tunl0 || fail "VIP on $r tunl0"
done

ipvs dir1 -A -t "$VIP:80" -s rr || fail "ipvsadm -A failed"
for r in rs4 rs5; do
    ipvs dir1 -a -t "$VIP:80" -r "$(topo_ip4 "$r"):80" -i || fail "ipvsadm -a $r failed"
done
ipvs dir1 -Ln
for r in rs4 rs5; do
    expect_eq "forwarding of $r" Tunnel "$(ipvs_dest_field dir1 -t "$VIP:80" "$(topo_ip4 "$r"):80" forward)"
done

fetch_dist 20 "http://$VIP/"
expect_no_errors
for r in rs4 rs5; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done

for r in rs4 rs5; do
    rx="$(/usr/sbin/ip -n "$r" -s link show tunl0 | awk '/RX:/ {getline; print $2; exit}')"
    [ "${rx:-0}" -gt 0 ] || fail "$r received nothing on tunl0 (RX packets ${rx:-?})"
    echo "ok: $r decapsulated $rx packets on tunl0"
done
expect_eq "rs4's route to the client" 10.0.2.1 \
    "$(/usr/sbin/ip -n rs4 route get 198.51.100.10 from "$VIP" | sed -n 's/.* via \([^ ]*\).*/\1/p')"

ipvs_wait_conns dir1 -t "$VIP:80" 20
ipvs dir1 -Ln --stats --exact
expect_eq "director OutPkts (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -t "$VIP:80" outpkts)"
