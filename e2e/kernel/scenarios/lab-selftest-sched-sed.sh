# Scheduler sed driven by ipvsadm: shortest expected delay: with no active connections, the highest weight (rs2) takes them all.
. /lab/scenario.sh
sched_topology
sched_service sed
fetch_dist 30 "$(sched_url)"
expect_no_errors
expect_eq "requests answered by rs2 (weight 3)" 30 "$(dist_of rs2)"
