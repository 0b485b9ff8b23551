# SCTP services driven by the node agent, NAT then DR, each balanced by rr
# over rs1 and rs2, with lab-sctp answering on them (each answer names its
# server). Every association (a new client source port) is a new IPVS
# connection: 6 associations spread 3/3, each one is set up, carries a message
# and its answer back to the client, and ends; the director's SCTP connection
# table agrees with who answered each association; the replies go through
# the director under NAT (OutPkts > 0) and bypass it under DR (OutPkts 0).
# lab-timeout: 150
. /lab/scenario.sh
NAT_VIP=203.0.113.73 DR_VIP=203.0.113.74 PORT=3868
command -v lab-sctp >/dev/null || fail "lab-sctp is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
modprobe sctp || fail "cannot load the sctp module (e2e/kernel/setup.sh MODULES packs it)"
agent_lab_up

# NAT: RealServers by address; the servers listen on their own address and
# the director rewrites the replies, so rs1 and rs2 route through it.
topo_rs_gateway dir1 || fail "cannot route the realservers via dir1"
manifest_vs sctp-nat "$NAT_VIP" "$PORT" rr NAT SCTP
for r in rs1 rs2; do
    manifest_rs "sctp-nat-$r" sctp-nat "{address: $(topo_ip4 "$r"), port: $PORT}"
    rs_sctp_start "$r" "$(topo_ip4 "$r"):$PORT"
done
agent_start dir1
ipvs_expect dir1 30 <<RULES
-A --sctp-service $NAT_VIP:$PORT -s rr
-a --sctp-service $NAT_VIP:$PORT -r 10.0.1.11:$PORT -m -w 1
-a --sctp-service $NAT_VIP:$PORT -r 10.0.1.12:$PORT -m -w 1
RULES
wait_until 15 addr_held dir1 "$NAT_VIP" || true
expect_vip_on dir1 "$NAT_VIP"
sctp_dist 6 "$NAT_VIP:$PORT" 31000
expect_no_errors
for r in rs1 rs2; do expect_eq "NAT associations answered by $r (rr)" 3 "$(dist_of "$r")"; done
expect_conn_table dir1 SCTP "$NAT_VIP:$PORT" "$SCTP_ANSWERS"
ipvs_wait_conns dir1 --sctp-service "$NAT_VIP:$PORT" 6
outpkts="$(ipvs_svc_stat dir1 --sctp-service "$NAT_VIP:$PORT" outpkts)"
[ "$outpkts" -gt 0 ] || fail "NAT outpkts on the director is $outpkts, expected > 0 (the replies are rewritten by it)"
echo "ok: NAT outpkts on the director: $outpkts"

# DR: RealServers by nodeName, so the agents on rs1 and rs2 put the VIP on lo;
# the servers listen on the VIP itself, so their replies leave from it and go
# straight to the router.
topo_rs_gateway router || fail "cannot route the realservers via the router"
manifest_vs sctp-dr "$DR_VIP" "$PORT" rr DR SCTP
for r in rs1 rs2; do manifest_rs_node "sctp-dr-$r" sctp-dr "$r"; done
for r in rs1 rs2; do agent_start "$r"; done
ipvs_expect dir1 30 <<RULES
-A --sctp-service $NAT_VIP:$PORT -s rr
-a --sctp-service $NAT_VIP:$PORT -r 10.0.1.11:$PORT -m -w 1
-a --sctp-service $NAT_VIP:$PORT -r 10.0.1.12:$PORT -m -w 1
-A --sctp-service $DR_VIP:$PORT -s rr
-a --sctp-service $DR_VIP:$PORT -r 10.0.1.11:$PORT -g -w 1
-a --sctp-service $DR_VIP:$PORT -r 10.0.1.12:$PORT -g -w 1
RULES
wait_until 15 addr_held dir1 "$DR_VIP" || true
expect_vip_on dir1 "$DR_VIP"
for r in rs1 rs2; do
    wait_until 15 addr_held "$r" "$DR_VIP" lo || fail "$r does not hold $DR_VIP on lo"
    rs_sctp_start "$r" "$DR_VIP:$PORT"
done
sctp_dist 6 "$DR_VIP:$PORT" 32000
expect_no_errors
for r in rs1 rs2; do expect_eq "DR associations answered by $r (rr)" 3 "$(dist_of "$r")"; done
expect_conn_table dir1 SCTP "$DR_VIP:$PORT" "$SCTP_ANSWERS"
ipvs_wait_conns dir1 --sctp-service "$DR_VIP:$PORT" 6
expect_eq "DR outpkts on the director (replies bypass it)" 0 "$(ipvs_svc_stat dir1 --sctp-service "$DR_VIP:$PORT" outpkts)"
for n in dir1 rs1 rs2; do agent_alive "$n" || fail "agent on $n died"; done
