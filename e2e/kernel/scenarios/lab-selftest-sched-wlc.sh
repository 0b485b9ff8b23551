# Scheduler wlc driven by ipvsadm: held connections follow the weights (6 -> 1/3/2).
. /lab/scenario.sh
sched_topology
sched_service wlc
fetch_dist 30 "$(sched_url)"
expect_no_errors
sched_service wlc 9000 9000
hold_conns 6 "$SCHED_VIP" 9000
expect_active_conns 9000 rs1=1 rs2=3 rs3=2
