# IPv6 NAT driven by ipvsadm: VIP [2001:db8:f::10]:8080 on dir1 (the router
# routes 2001:db8:f::/64 to it) -> rs1..rs3 port 80, round robin, replies back
# through the director.
. /lab/scenario.sh
VIP=2001:db8:f::10
SVC="[$VIP]:8080"
topo_up || fail "topology did not come up"
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
/usr/sbin/ip -n dir1 -6 addr add "$VIP/128" dev lo nodad

ipvs dir1 -A -t "$SVC" -s rr || fail "ipvsadm -A failed"
for r in rs1 rs2 rs3; do
    ipvs dir1 -a -t "$SVC" -r "[$(topo_ip6 "$r")]:80" -m || fail "ipvsadm -a $r failed"
done
ipvs dir1 -Ln
ipvs_expect_sched dir1 -t "$SVC" rr
for r in rs1 rs2 rs3; do
    expect_eq "forwarding of $r" Masq "$(ipvs_dest_field dir1 -t "$SVC" "[$(topo_ip6 "$r")]:80" forward)"
done

fetch_dist 30 "http://[$VIP]:8080/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done
ipvs dir1 -Lnc | grep -q "\[2001:db8:100::10\]" || fail "no IPVS connection from the client's IPv6 address"

ipvs_wait_conns dir1 -t "$SVC" 30
ipvs dir1 -Ln --stats --exact
out="$(ipvs_svc_stat dir1 -t "$SVC" outpkts)"
[ "$out" -gt 0 ] || fail "director OutPkts is $out: the replies did not go through it"
echo "ok: director OutPkts = $out"
