# Scheduler lc driven by ipvsadm: held connections spread to the least connected (6 -> 2/2/2, weights ignored).
. /lab/scenario.sh
sched_topology
sched_service lc
fetch_dist 30 "$(sched_url)"
expect_no_errors
sched_service lc 9000 9000
hold_conns 6 "$SCHED_VIP" 9000
expect_active_conns 9000 rs1=2 rs2=2 rs3=2
