# Scheduler sh driven by ipvsadm: source hashing: each client address sticks to one server, and different addresses spread.
. /lab/scenario.sh
sched_topology
sched_service sh
winners=""
for src in 198.51.100.10 198.51.100.21 198.51.100.22 198.51.100.23 198.51.100.24 198.51.100.25; do
    client_source "$src"
    fetch_dist 10 "$(sched_url)"
    expect_no_errors
    expect_sticky
    winners="$winners $(dist_winner)"
done
distinct="$(echo $winners | tr ' ' '\n' | sort -u | wc -l)"
echo "servers per source:$winners"
[ "$distinct" -ge 2 ] || fail "6 client addresses all hashed to one server ($winners)"
