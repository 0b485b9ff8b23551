# DNS health checks of a UDP service (onFailure defaults to Remove for UDP).
# A client sends a query every 200 ms from one source port, so the director
# keeps its flow on one realserver. That server stops answering: within
# fall*interval + 1 s it leaves the service, and every query the client sends
# after that bound is answered by the other server (no stale UDP entry keeps
# black-holing it). It answers again: it is back in the service.
# lab-timeout: 150
. /lab/scenario.sh
INTERVAL=2 FALL=2 RISE=2
VIP=203.0.113.63
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up
topo_rs_gateway dir1
dns_start() { nsx "$1" sh -c "lab-dns serve 0.0.0.0:53 $1 </dev/null >/dev/null 2>&1 & echo \$! >/tmp/dns.$1.pid"; }
for r in rs1 rs2; do dns_start "$r"; done
manifest_health_vs hdns "$VIP" 53 UDP NAT hdns \
    "{type: DNS, dnsName: lab., intervalSeconds: $INTERVAL, timeoutSeconds: 1, fall: $FALL, rise: $RISE}"
for r in rs1 rs2; do manifest_rs_addr "hdns-$r" hdns "$r" 53; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
-A -u $VIP:53 -s rr
-a -u $VIP:53 -r 10.0.1.11:53 -m -w 1
-a -u $VIP:53 -r 10.0.1.12:53 -m -w 1
RULES

LOG=/tmp/dns-client.log
nsx client sh -c "lab-dns query $VIP:53 5353 400 200 500 >$LOG 2>&1 & echo \$! >/tmp/dns-client.pid"
t0="$(now_cs)"
stream_wait "$LOG" "$t0" 5
expect_no_failed_requests "failed queries before the stop" "$LOG" 0
sticky="$(awk '$2 != "ERR" { print $2 }' "$LOG" | sort -u)"
case "$sticky" in
    rs1) other=rs2 ;;
    rs2) other=rs1 ;;
    *) fail "the client's queries from one source port went to '$(echo $sticky)', expected one realserver" ;;
esac
echo "ok: the client's flow is on $sticky"

kill "$(cat "/tmp/dns.$sticky.pid")"
t_stop="$(now_cs)"
wait_dest_weight dir1 -u "$VIP:53" "$(topo_ip4 "$sticky"):53" absent $(( FALL * INTERVAL + 10 ))
t_out="$(now_cs)"
bound=$(( (FALL * INTERVAL + 1) * 100 ))
expect_at_most "cs from the stop until $sticky left the service" "$bound" $(( t_out - t_stop ))
expect_dest_state dir1 "$(topo_ip4 "$sticky"):53" Failing
after=$(( t_stop + bound ))
stream_wait "$LOG" "$after" 10
expect_no_failed_requests "failed queries sent later than fall*interval + 1 s after the stop" "$LOG" "$after"
expect_eq "queries answered by $other after the bound" "$(stream_count "$LOG" "$after")" "$(stream_count "$LOG" "$after" "$other")"
first="$(stream_first "$LOG" "$t_stop" "$other")"
echo "summary: $sticky out after $(( t_out - t_stop )) cs; the client's flow answered by $other from $(( first - t_stop )) cs after the stop (bound $bound cs); $(stream_count "$LOG" "$t_stop" ERR) queries lost"

t_start="$(now_cs)"
dns_start "$sticky"
wait_dest_weight dir1 -u "$VIP:53" "$(topo_ip4 "$sticky"):53" 1 $(( RISE * INTERVAL + 10 ))
t_back="$(now_cs)"
expect_at_most "cs from the restart until $sticky is back" $(( (RISE * INTERVAL + 1) * 100 )) $(( t_back - t_start ))
expect_no_failed_requests "failed queries since the restart" "$LOG" "$t_start"
kill "$(cat /tmp/dns-client.pid)"
