# Sorry server: a NAT service over rs1 and rs2 with a TCP check and
# sorryServer rs3. Both realservers stop: within fall*interval + 1 s of the
# second stop the sorry server is programmed (both realservers at weight 0),
# answers every request, and the agent reports it as Sorry. rs1 recovers: the
# sorry server is removed and rs1 answers every request.
# lab-timeout: 150
. /lab/scenario.sh
INTERVAL=2 FALL=2 RISE=2
VIP=203.0.113.62
agent_lab_up
topo_rs_gateway dir1
manifest_health_vs sorry "$VIP" 80 TCP NAT sorry \
    "{type: TCP, intervalSeconds: $INTERVAL, timeoutSeconds: 1, fall: $FALL, rise: $RISE}" \
    "sorryServer: {address: $(topo_ip4 rs3), port: 80}"
for r in rs1 rs2; do manifest_rs_addr "sorry-$r" sorry "$r" 80; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP:80" rr 80 rs1=1 rs2=1)
RULES
fetch_dist 4 "http://$VIP/"
expect_no_errors
expect_eq "requests answered by the sorry server while realservers are healthy" 0 "$(dist_of rs3)"

rs_httpd_stop rs1
rs_httpd_stop rs2
t_stop="$STOPPED_AT"
wait_dest_weight dir1 -t "$VIP:80" 10.0.1.13:80 1 $(( FALL * INTERVAL + 10 ))
t_sorry="$(now_cs)"
expect_at_most "cs from the last stop until the sorry server is in" $(( (FALL * INTERVAL + 1) * 100 )) $(( t_sorry - t_stop ))
echo "summary: sorry server in $(( t_sorry - t_stop )) cs after the last realserver stopped"
ipvs_expect dir1 5 <<RULES
$(sched_rules "$VIP:80" rr 80 rs1=0 rs2=0 rs3=1)
RULES
expect_dest_state dir1 10.0.1.13:80 Sorry
fetch_dist 6 "http://$VIP/"
expect_no_errors
expect_eq "requests answered by the sorry server (rs3)" 6 "$(dist_of rs3)"

t_start="$(now_cs)"
rs_httpd_start rs1
wait_dest_weight dir1 -t "$VIP:80" 10.0.1.13:80 absent $(( RISE * INTERVAL + 10 ))
t_back="$(now_cs)"
expect_at_most "cs from rs1's restart until the sorry server is out" $(( (RISE * INTERVAL + 1) * 100 )) $(( t_back - t_start ))
echo "summary: sorry server out $(( t_back - t_start )) cs after rs1 restarted"
ipvs_expect dir1 5 <<RULES
$(sched_rules "$VIP:80" rr 80 rs1=1 rs2=0)
RULES
fetch_dist 6 "http://$VIP/"
expect_no_errors
expect_eq "requests answered by rs1 (recovered)" 6 "$(dist_of rs1)"
