# Scheduler rr driven by the node agent: a VirtualService with scheduler rr over
# RealServers rs1-rs3 weighted 1:3:2 in their manifests (weights rr ignores).
# Sequential requests from one client cycle through the servers, so 60 of them
# split exactly 20/20/20.
. /lab/scenario.sh
VIP=203.0.113.40
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_sched_vs sched "$VIP" 8080 rr
for rw in rs1=1 rs2=3 rs3=2; do manifest_sched_rs sched "${rw%%=*}" "${rw#*=}" 80; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP:8080" rr 80 rs1=1 rs2=3 rs3=2)
RULES
ipvs_expect_sched dir1 -t "$VIP:8080" rr
fetch_dist 60 "http://$VIP:8080/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr, weights ignored)" 20 "$(dist_of "$r")"; done
agent_alive dir1 || fail "agent on dir1 died"
