# Scheduler fo driven by the node agent: weighted failover over RealServers
# rs1-rs3 weighted 1:3:2 in their manifests. The highest weight (rs2) takes
# every request; once its manifest sets weight 0, the next highest (rs3) takes
# every request.
. /lab/scenario.sh
VIP=203.0.113.40
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_sched_vs sched "$VIP" 8080 fo
for rw in rs1=1 rs2=3 rs3=2; do manifest_sched_rs sched "${rw%%=*}" "${rw#*=}" 80; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP:8080" fo 80 rs1=1 rs2=3 rs3=2)
RULES
ipvs_expect_sched dir1 -t "$VIP:8080" fo
fetch_dist 30 "http://$VIP:8080/"
expect_no_errors
expect_eq "requests answered by rs2 (weight 3, the highest)" 30 "$(dist_of rs2)"
manifest_sched_rs sched rs2 0 80
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP:8080" fo 80 rs1=1 rs2=0 rs3=2)
RULES
fetch_dist 20 "http://$VIP:8080/"
expect_no_errors
expect_eq "requests answered by rs3 (weight 2) with rs2 at weight 0" 20 "$(dist_of rs3)"
agent_alive dir1 || fail "agent on dir1 died"
