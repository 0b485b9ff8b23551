# Scheduler ovf driven by ipvsadm: overflow: the highest weight (rs2) takes connections while its active count is below its weight.
. /lab/scenario.sh
sched_topology
sched_service ovf
fetch_dist 30 "$(sched_url)"
expect_no_errors
expect_eq "requests answered by rs2 (weight 3)" 30 "$(dist_of rs2)"
