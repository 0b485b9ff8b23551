# Scheduler lblc driven by ipvsadm: locality by destination: with no server overloaded, one VIP sticks to one server.
. /lab/scenario.sh
sched_topology
sched_service lblc
fetch_dist 30 "$(sched_url)"
expect_no_errors
expect_sticky
