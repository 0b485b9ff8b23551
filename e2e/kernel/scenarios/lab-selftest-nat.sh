# IPv4 NAT driven by ipvsadm: VIP 203.0.113.10:8080 on dir1 -> rs1..rs3:80
# (port mapping), round robin. The realservers route through the director, so
# the replies come back through it (OutPkts > 0).
. /lab/scenario.sh
VIP=203.0.113.10
topo_up || fail "topology did not come up"
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
# A director on a one-armed LAN must not tell realservers to bypass it.
nsx dir1 sysctl -q -w net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
/usr/sbin/ip -n dir1 addr add "$VIP/32" dev eth0

ipvs dir1 -A -t "$VIP:8080" -s rr || fail "ipvsadm -A failed"
for r in rs1 rs2 rs3; do
    ipvs dir1 -a -t "$VIP:8080" -r "$(topo_ip4 "$r"):80" -m || fail "ipvsadm -a $r failed"
done
ipvs dir1 -Ln
ipvs_expect_sched dir1 -t "$VIP:8080" rr
for r in rs1 rs2 rs3; do
    expect_eq "forwarding of $r" Masq "$(ipvs_dest_field dir1 -t "$VIP:8080" "$(topo_ip4 "$r"):80" forward)"
done

# Nothing listens on the VIP's port 80: the answers on 8080 come from the mapping.
topo_fetch "http://$VIP/" >/dev/null 2>&1 && fail "$VIP:80 answered, but only 8080 is a virtual service"

fetch_dist 30 "http://$VIP:8080/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done

# The client address reaches the realservers unchanged (NAT rewrites only the destination).
ipvs dir1 -Lnc | tee /tmp/conns
grep -q "198.51.100.10:" /tmp/conns || fail "no IPVS connection from the client address 198.51.100.10"
expect_eq "rs1's route to the client" 10.0.1.2 \
    "$(/usr/sbin/ip -n rs1 route get 198.51.100.10 | sed -n 's/.* via \([^ ]*\).*/\1/p')"

ipvs_wait_conns dir1 -t "$VIP:8080" 30
ipvs dir1 -Ln --stats --exact
out="$(ipvs_svc_stat dir1 -t "$VIP:8080" outpkts)"
[ "$out" -gt 0 ] || fail "director OutPkts is $out: the replies did not go through it"
echo "ok: director OutPkts = $out"
