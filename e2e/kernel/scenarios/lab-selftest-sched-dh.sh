# Scheduler dh driven by ipvsadm: destination hashing: every client, whatever its address, lands on the same server.
. /lab/scenario.sh
sched_topology
sched_service dh
first=""
for src in 198.51.100.10 198.51.100.21 198.51.100.22 198.51.100.23; do
    client_source "$src"
    fetch_dist 10 "$(sched_url)"
    expect_no_errors
    expect_sticky
    [ -n "$first" ] || first="$(dist_winner)"
    expect_eq "server for source $src" "$first" "$(dist_winner)"
done
