# UDP services driven by the node agent, DR then NAT, with lab-dns answering
# on rs1-rs3 (each answer names its server). Every client flow (a new source
# port) is scheduled afresh: DR with wrr 1:2:3 spreads 12 flows 2/4/6, NAT with
# rr spreads 6 flows 2/2/2. Every query is answered (the replies reach the
# client), the director's connection table agrees with who answered each flow,
# and the replies bypass the director under DR (OutPkts 0) but go through it
# under NAT (OutPkts > 0).
# lab-timeout: 150
. /lab/scenario.sh
DR_VIP=203.0.113.71 NAT_VIP=203.0.113.72
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up

# DR: RealServers by nodeName, so the agents on rs1-rs3 put the VIP on lo; the
# servers bind the VIP itself, so their replies leave from it.
manifest_vs udp-dr "$DR_VIP" 53 wrr DR UDP
for i in 1 2 3; do manifest_rs "udp-dr-rs$i" udp-dr "{nodeName: rs$i, weight: $i}"; done
for n in dir1 rs1 rs2 rs3; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -u $DR_VIP:53 -s wrr
-a -u $DR_VIP:53 -r 10.0.1.11:53 -g -w 1
-a -u $DR_VIP:53 -r 10.0.1.12:53 -g -w 2
-a -u $DR_VIP:53 -r 10.0.1.13:53 -g -w 3
RULES
wait_until 15 addr_held dir1 "$DR_VIP" || true
expect_vip_on dir1 "$DR_VIP"
for r in rs1 rs2 rs3; do
    wait_until 15 addr_held "$r" "$DR_VIP" lo || fail "$r does not hold $DR_VIP on lo"
    rs_dns_start "$r" "$DR_VIP:53"
done
udp_dist 12 "$DR_VIP:53" 21000
expect_no_errors
expect_eq "DR flows answered by rs1 (weight 1)" 2 "$(dist_of rs1)"
expect_eq "DR flows answered by rs2 (weight 2)" 4 "$(dist_of rs2)"
expect_eq "DR flows answered by rs3 (weight 3)" 6 "$(dist_of rs3)"
udp_expect_conn_table dir1 "$DR_VIP:53"
ipvs_wait_conns dir1 -u "$DR_VIP:53" 12
expect_eq "DR inpkts on the director (one per query)" 12 "$(ipvs_svc_stat dir1 -u "$DR_VIP:53" inpkts)"
expect_eq "DR outpkts on the director (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -u "$DR_VIP:53" outpkts)"

# NAT: RealServers by address; the servers answer on their own address and
# the director rewrites the replies, so rs1-rs3 route through it.
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_vs udp-nat "$NAT_VIP" 53 rr NAT UDP
for r in rs1 rs2 rs3; do
    manifest_rs "udp-nat-$r" udp-nat "{address: $(topo_ip4 "$r"), port: 53}"
    rs_dns_start "$r" "$(topo_ip4 "$r"):53"
done
ipvs_expect dir1 30 <<RULES
-A -u $DR_VIP:53 -s wrr
-a -u $DR_VIP:53 -r 10.0.1.11:53 -g -w 1
-a -u $DR_VIP:53 -r 10.0.1.12:53 -g -w 2
-a -u $DR_VIP:53 -r 10.0.1.13:53 -g -w 3
-A -u $NAT_VIP:53 -s rr
-a -u $NAT_VIP:53 -r 10.0.1.11:53 -m -w 1
-a -u $NAT_VIP:53 -r 10.0.1.12:53 -m -w 1
-a -u $NAT_VIP:53 -r 10.0.1.13:53 -m -w 1
RULES
wait_until 15 addr_held dir1 "$NAT_VIP" || true
expect_vip_on dir1 "$NAT_VIP"
udp_dist 6 "$NAT_VIP:53" 22000
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "NAT flows answered by $r (rr)" 2 "$(dist_of "$r")"; done
udp_expect_conn_table dir1 "$NAT_VIP:53"
ipvs_wait_conns dir1 -u "$NAT_VIP:53" 6
expect_eq "NAT outpkts on the director (every reply rewritten by it)" 6 "$(ipvs_svc_stat dir1 -u "$NAT_VIP:53" outpkts)"
for n in dir1 rs1 rs2 rs3; do agent_alive "$n" || fail "agent on $n died"; done
