# Scheduler dh driven by the node agent: destination hashing over RealServers
# rs1-rs3 (weights 1:3:2 from the manifests). One VIP hashes to one server, so
# every request from every client address lands on the same server.
. /lab/scenario.sh
VIP=203.0.113.40
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_sched_vs sched "$VIP" 8080 dh
for rw in rs1=1 rs2=3 rs3=2; do manifest_sched_rs sched "${rw%%=*}" "${rw#*=}" 80; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP:8080" dh 80 rs1=1 rs2=3 rs3=2)
RULES
ipvs_expect_sched dir1 -t "$VIP:8080" dh
first=""
for src in 198.51.100.10 198.51.100.21 198.51.100.22 198.51.100.23; do
    client_source "$src"
    fetch_dist 8 "http://$VIP:8080/"
    expect_no_errors
    expect_sticky
    [ -n "$first" ] || first="$(dist_winner)"
    expect_eq "server for source $src" "$first" "$(dist_winner)"
done
agent_alive dir1 || fail "agent on dir1 died"
