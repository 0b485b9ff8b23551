# Scheduler wrr driven by ipvsadm: requests split by weight 1:3:2 (±10% over 240).
. /lab/scenario.sh
sched_topology
sched_service wrr
fetch_dist 240 "$(sched_url)"
expect_no_errors
expect_within "requests answered by rs1 (weight 1)" 40 "$(dist_of rs1)" 10
expect_within "requests answered by rs2 (weight 3)" 120 "$(dist_of rs2)" 10
expect_within "requests answered by rs3 (weight 2)" 80 "$(dist_of rs3)" 10
