# IPv4 direct routing driven by ipvsadm: VIP 203.0.113.20:80 on dir1 and on the
# realservers' lo (arp_ignore=1, arp_announce=2). Only the director may answer
# ARP for the VIP; the realservers reply straight to the client through the
# router, so the director's OutPkts stay 0.
. /lab/scenario.sh
VIP=203.0.113.20
topo_up || fail "topology did not come up"
/usr/sbin/ip -n dir1 addr add "$VIP/32" dev eth0
dir1_mac="$(topo_mac dir1)"

# arp_responders: distinct MACs answering the router's ARP requests for the VIP.
arp_responders() {
    nsx router arping -I lan0 -c 2 -w 2 "$VIP" 2>&1 | tee -a /tmp/arping.log \
        | sed -n 's/.*reply from .* \[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f' | sort -u
}

# Control: a realserver holding the VIP with default ARP settings answers ARP
# for it too. This proves the check below can see a leak.
/usr/sbin/ip -n rs1 addr add "$VIP/32" dev lo
leak="$(arp_responders)"
echo "ARP responders for $VIP with rs1 misconfigured: $(echo $leak)"
echo "$leak" | grep -qx "$(topo_mac rs1)" \
    || fail "control: rs1 (VIP on lo, arp_ignore=0) did not answer ARP; the ARP check would prove nothing"

# Proper DR realservers.
for r in rs1 rs2 rs3; do
    nsx "$r" sysctl -q -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
        net.ipv4.conf.eth0.arp_ignore=1 net.ipv4.conf.eth0.arp_announce=2 || fail "sysctl on $r"
    /usr/sbin/ip -n "$r" addr replace "$VIP/32" dev lo || fail "VIP on $r lo"
done
/usr/sbin/ip -n router neigh flush dev lan0
resp="$(arp_responders)"
expect_eq "ARP responders for $VIP (dir1 is $dir1_mac)" "$dir1_mac" "$(echo $resp)"

ipvs dir1 -A -t "$VIP:80" -s rr || fail "ipvsadm -A failed"
for r in rs1 rs2 rs3; do
    ipvs dir1 -a -t "$VIP:80" -r "$(topo_ip4 "$r"):80" -g || fail "ipvsadm -a $r failed"
done
ipvs dir1 -Ln
for r in rs1 rs2 rs3; do
    expect_eq "forwarding of $r" Route "$(ipvs_dest_field dir1 -t "$VIP:80" "$(topo_ip4 "$r"):80" forward)"
done

fetch_dist 30 "http://$VIP/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done

/usr/sbin/ip -n router neigh show "$VIP"
expect_eq "router's neighbour entry for $VIP" "$dir1_mac" \
    "$(/usr/sbin/ip -n router neigh show "$VIP" dev lan0 | sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p')"
expect_eq "rs1's route to the client" 10.0.1.1 \
    "$(/usr/sbin/ip -n rs1 route get 198.51.100.10 from "$VIP" | sed -n 's/.* via \([^ ]*\).*/\1/p')"

ipvs_wait_conns dir1 -t "$VIP:80" 30
ipvs dir1 -Ln --stats --exact
expect_eq "director OutPkts (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -t "$VIP:80" outpkts)"
