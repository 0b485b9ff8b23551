# Scheduler nq driven by ipvsadm: never queue: an idle server is used at once, so sequential requests stay on one server.
. /lab/scenario.sh
sched_topology
sched_service nq
fetch_dist 30 "$(sched_url)"
expect_no_errors
expect_sticky
