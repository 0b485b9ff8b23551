# Scheduler fo driven by ipvsadm: weighted failover: the available server with the highest weight (rs2) takes everything.
. /lab/scenario.sh
sched_topology
sched_service fo
fetch_dist 30 "$(sched_url)"
expect_no_errors
expect_eq "requests answered by rs2 (weight 3)" 30 "$(dist_of rs2)"
# Failover: weight 0 takes rs2 out; the next highest (rs3, weight 2) takes over.
ipvs dir1 -e -t "$SCHED_VIP:8080" -r "$(topo_ip4 rs2):80" -m -w 0
fetch_dist 20 "$(sched_url)"
expect_no_errors
expect_eq "requests answered by rs3 (weight 2) with rs2 at weight 0" 20 "$(dist_of rs3)"
