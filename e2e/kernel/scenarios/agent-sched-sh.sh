# Scheduler sh driven by the node agent: source hashing over RealServers rs1-rs3
# (weights 1:3:2 from the manifests). Each of six client addresses sticks to one
# server, the addresses spread over at least two servers, and each address still
# reaches its server when revisited after the others sent traffic.
. /lab/scenario.sh
VIP=203.0.113.40
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_sched_vs sched "$VIP" 8080 sh
for rw in rs1=1 rs2=3 rs3=2; do manifest_sched_rs sched "${rw%%=*}" "${rw#*=}" 80; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP:8080" sh 80 rs1=1 rs2=3 rs3=2)
RULES
ipvs_expect_sched dir1 -t "$VIP:8080" sh
SOURCES="198.51.100.10 198.51.100.21 198.51.100.22 198.51.100.23 198.51.100.24 198.51.100.25"
winners=""
for src in $SOURCES; do
    client_source "$src"
    fetch_dist 8 "http://$VIP:8080/"
    expect_no_errors
    expect_sticky
    winners="$winners $(dist_winner)"
done
echo "servers per source:$winners"
distinct="$(echo $winners | tr ' ' '\n' | sort -u | wc -l)"
[ "$distinct" -ge 2 ] || fail "6 client addresses all hashed to one server ($winners)"
# Second visit, in reverse order: every address still reaches its server.
i=6
for src in $(echo $SOURCES | tr ' ' '\n' | sort -r); do
    want="$(echo $winners | cut -d' ' -f"$i")"
    client_source "$src"
    fetch_dist 2 "http://$VIP:8080/"
    expect_no_errors
    expect_sticky
    expect_eq "server for source $src on a second visit" "$want" "$(dist_winner)"
    i=$((i - 1))
done
agent_alive dir1 || fail "agent on dir1 died"
