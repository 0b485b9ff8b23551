# Graceful drain: a long-lived TCP stream to a realserver whose RealServer is
# deleted keeps flowing; its destination stays at weight 0, so new connections
# avoid it (and none fails); the destination disappears when the stream
# closes, long before the drain deadline (60 s). An agent restart during the
# drain neither cuts the stream nor ends the drain.
# lab-needs: agent
. /lab/scenario.sh
VIP=203.0.113.50
drain_setup drain-s "$VIP" 60
drain_stream_start "$VIP"
other=rs1; [ "$DRAIN_STREAM_RS" = rs1 ] && other=rs2

manifest_remove "drain-s-$DRAIN_STREAM_RS"
ipvs_expect dir1 30 <<RULES
-A -t $VIP:9000 -s rr
-a -t $VIP:9000 -r $(topo_ip4 "$other"):9000 -m -w 1
-a -t $VIP:9000 -r $DRAIN_STREAM_DEST -m -w 0
RULES
wait_until 10 drain_log_has dir1 "drain started" "$DRAIN_STREAM_DEST" \
    || fail "dir1's agent logged no 'drain started' for $DRAIN_STREAM_DEST"
drain_stream_flows
drain_stream_alive || fail "the stream was cut when its RealServer was deleted"
echo "ok: the stream to $DRAIN_STREAM_RS still flows after its RealServer was deleted"

drain_new_conns "$VIP" 6
expect_eq "connections to the draining $DRAIN_STREAM_DEST (the stream only)" 1 \
    "$(drain_conns_to "$VIP:9000" "$DRAIN_STREAM_DEST")"
expect_eq "new connections to $other:9000" 6 "$(drain_conns_to "$VIP:9000" "$(topo_ip4 "$other"):9000")"
drain_stream_flows
drain_stream_alive || fail "the stream was cut during the drain"
echo "$DRAIN_STREAM_DEST -w 0 in: $(ipvs_rules dir1 | tr '\n' ';')"

# The agent restarts mid-drain: it finds its weight-0 destination, which the
# plan no longer has, in the kernel and its ledger, and drains it again.
agent_stop dir1
agent_start dir1
_drains_twice() { [ "$(grep -F 'drain started' "$(_agent_logs)/dir1.log" | grep -cF "$DRAIN_STREAM_DEST")" -ge 2 ]; }
wait_until 15 _drains_twice || fail "the restarted agent did not take up the drain of $DRAIN_STREAM_DEST: $(tail -n 5 "$(_agent_logs)/dir1.log")"
ipvs_expect dir1 5 <<RULES
-A -t $VIP:9000 -s rr
-a -t $VIP:9000 -r $(topo_ip4 "$other"):9000 -m -w 1
-a -t $VIP:9000 -r $DRAIN_STREAM_DEST -m -w 0
RULES
drain_stream_flows
drain_stream_alive || fail "the stream was cut by the agent's restart"
echo "ok: the restarted agent drains $DRAIN_STREAM_DEST on; the stream flows"

# The stream closes: the drain ends with its last active connection.
kill "$DRAIN_STREAM_PID"
ipvs_expect dir1 15 <<RULES
-A -t $VIP:9000 -s rr
-a -t $VIP:9000 -r $(topo_ip4 "$other"):9000 -m -w 1
RULES
wait_until 5 drain_log_has dir1 "drain ended" "$DRAIN_STREAM_DEST" "connections ended" \
    || fail "dir1's agent did not log the drain of $DRAIN_STREAM_DEST ending with its connections: $(grep -F 'drain' "$(_agent_logs)/dir1.log" | tail -n 3)"
echo "ok: $DRAIN_STREAM_DEST removed once its stream closed: $(grep -F 'drain ended' "$(_agent_logs)/dir1.log" | tail -n 1)"
drain_new_conns "$VIP" 2
agent_alive dir1 || fail "agent on dir1 died"
