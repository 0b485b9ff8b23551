# TCP health checks under a request stream. Two NAT services over the same
# realservers rs1-rs3:80 with the same TCP check (so one probe per realserver
# serves both), one with onFailure Inhibit, one with Remove. rs2's httpd stops:
# within fall*interval + 1 s rs2 gets weight 0 (Inhibit) or leaves the service
# (Remove); from then on no request goes to it and none fails. It starts again:
# it is back after at least (rise-1)*interval and at most rise*interval + 1 s,
# and serves requests again, with no failure.
# lab-timeout: 180
. /lab/scenario.sh
INTERVAL=2 FALL=2 RISE=2
VIP_I=203.0.113.60 VIP_R=203.0.113.61
RS2=10.0.1.12:80
agent_lab_up
topo_rs_gateway dir1
check="{type: TCP, intervalSeconds: $INTERVAL, timeoutSeconds: 1, fall: $FALL, rise: $RISE"
manifest_health_vs hc-inhibit "$VIP_I" 80 TCP NAT hc "$check, onFailure: Inhibit}"
manifest_health_vs hc-remove "$VIP_R" 80 TCP NAT hc "$check, onFailure: Remove}"
for r in rs1 rs2 rs3; do manifest_rs_addr "hc-$r" hc "$r" 80; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP_I:80" rr 80 rs1=1 rs2=1 rs3=1)
$(sched_rules "$VIP_R:80" rr 80 rs1=1 rs2=1 rs3=1)
RULES

stream_start inhibit "http://$VIP_I/"
stream_start remove "http://$VIP_R/"
t0="$(now_cs)"
for s in inhibit remove; do stream_wait "/tmp/stream.$s" "$t0" 2 rs2 30; done
expect_no_failed_requests "failed requests before the stop (inhibit)" /tmp/stream.inhibit 0
expect_no_failed_requests "failed requests before the stop (remove)" /tmp/stream.remove 0

# rs2 stops listening.
rs_httpd_stop rs2
t_stop="$STOPPED_AT"
bound=$(( (FALL * INTERVAL + 1) * 100 ))
wait_dest_weight dir1 -t "$VIP_I:80" "$RS2" 0 $(( FALL * INTERVAL + 10 ))
t_inhibit="$(now_cs)"
wait_dest_weight dir1 -t "$VIP_R:80" "$RS2" absent 5
t_remove="$(now_cs)"
expect_at_most "cs from the stop until rs2 is inhibited" "$bound" $(( t_inhibit - t_stop ))
expect_at_most "cs from the stop until rs2 is removed" "$bound" $(( t_remove - t_stop ))
expect_dest_state dir1 "$RS2" Failing
agent_status dir1 | grep -q '"lastError":"TCP connect to 10.0.1.12:80: ' \
    || fail "/status on dir1 does not give rs2's refused connect as lastError: $(agent_status dir1 | head -c 600)"
echo "ok: /status gives the refused connect as rs2's last error"
agent_metrics dir1 | grep -q "^lvs_agent_destination_healthy{virtual_service=\"default/hc-inhibit\",destination=\"$RS2\"} 0" \
    || fail "lvs_agent_destination_healthy of rs2 is not 0: $(agent_metrics dir1 | grep destination_healthy)"
echo "ok: lvs_agent_destination_healthy of rs2 in hc-inhibit is 0"
# After the window: no request to rs2, none failed (10 requests per stream).
after=$(( t_stop + bound ))
for s in inhibit remove; do
    stream_wait "/tmp/stream.$s" "$after" 10
    expect_no_failed_requests "failed requests ($s) later than fall*interval + 1 s after the stop" "/tmp/stream.$s" "$after"
    expect_eq "requests answered by rs2 ($s) after the stop" 0 "$(stream_count "/tmp/stream.$s" "$t_stop" rs2)"
    last="$(stream_last "/tmp/stream.$s" "$t_stop" ERR)"
    echo "summary: $s: last failed request $(( ${last:-$t_stop} - t_stop )) cs after the stop, rs2 out after $(( t_inhibit - t_stop )) cs (inhibit) / $(( t_remove - t_stop )) cs (remove), bound $bound cs"
done

# rs2 listens again.
t_start="$(now_cs)"
rs_httpd_start rs2
wait_dest_weight dir1 -t "$VIP_I:80" "$RS2" 1 $(( RISE * INTERVAL + 10 ))
t_back_i="$(now_cs)"
wait_dest_weight dir1 -t "$VIP_R:80" "$RS2" 1 5
t_back_r="$(now_cs)"
expect_at_most "cs from the restart until rs2 is back (inhibit)" $(( (RISE * INTERVAL + 1) * 100 )) $(( t_back_i - t_start ))
expect_at_least "cs from the restart until rs2 is back (rise passes in a row)" $(( (RISE - 1) * INTERVAL * 100 )) $(( t_back_i - t_start ))
expect_at_most "cs from the restart until rs2 is back (remove)" $(( (RISE * INTERVAL + 1) * 100 )) $(( t_back_r - t_start ))
for s in inhibit remove; do
    stream_wait "/tmp/stream.$s" "$t_start" 2 rs2 20
    first="$(stream_first "/tmp/stream.$s" "$t_start" rs2)"
    echo "summary: $s: rs2 answered again $(( first - t_start )) cs after its restart"
done
for s in inhibit remove; do stream_stop "$s"; done
for s in inhibit remove; do
    expect_no_failed_requests "failed requests ($s) after the restart" "/tmp/stream.$s" "$t_start"
    echo "summary: $s: $(stream_count "/tmp/stream.$s" 0) requests, $(stream_count "/tmp/stream.$s" 0 ERR) failed (all within the detection window)"
done
expect_dest_state_gone() { ! _dest_state_is dir1 "$RS2" Failing; }
wait_until 5 expect_dest_state_gone || fail "/status on dir1 still reports rs2 as Failing"
echo "ok: /status no longer reports rs2 as failing"
