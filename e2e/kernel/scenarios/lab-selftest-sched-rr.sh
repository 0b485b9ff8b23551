# Scheduler rr driven by ipvsadm: requests spread evenly, weights ignored.
. /lab/scenario.sh
sched_topology
sched_service rr
fetch_dist 150 "$(sched_url)"
expect_no_errors
for r in rs1 rs2 rs3; do expect_within "requests answered by $r" 50 "$(dist_of "$r")" 10; done
