# Graceful drain with a deadline: a stream that never ends, to a realserver
# whose RealServer is set to `state: Draining`, keeps flowing until
# drain.timeoutSeconds (5 s) has passed, not a moment before; then the
# destination is removed and the stream is cut. Then `state: Inactive` keeps
# the destination at weight 0 (no new connection, no drain), and `Active`
# gives its weight back.
# lab-needs: agent
. /lab/scenario.sh
VIP=203.0.113.51
TIMEOUT=5
drain_setup drain-d "$VIP" "$TIMEOUT"
drain_stream_start "$VIP"
other=rs1; [ "$DRAIN_STREAM_RS" = rs1 ] && other=rs2
DRAINED="-A -t $VIP:9000 -s rr
-a -t $VIP:9000 -r $(topo_ip4 "$other"):9000 -m -w 1"

# rs_state STATE: the stream's RealServer with spec.state STATE.
rs_state() {
manifest_write "drain-d-$DRAIN_STREAM_RS" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: drain-d-$DRAIN_STREAM_RS, namespace: default, labels: {app: drain-d}}
spec: {address: $(topo_ip4 "$DRAIN_STREAM_RS"), port: 9000, weight: 1, state: $1}
YAML
}
t0="$(cut -d' ' -f1 /proc/uptime)"
rs_state Draining
echo "$DRAINED
-a -t $VIP:9000 -r $DRAIN_STREAM_DEST -m -w 0" | ipvs_expect dir1 30
lines="$(_drain_stream_lines)"

# While the destination is there, the stream must live: poll both until the
# destination goes (bounded: the deadline plus the agent's reaction).
_dest_gone() { ! ipvs_rules dir1 | grep -qF -- "-r $DRAIN_STREAM_DEST "; }
limit=$(( $(date +%s) + TIMEOUT + 20 ))
while ! _dest_gone; do
    drain_stream_alive || _dest_gone || fail "the stream was cut while its destination was still draining"
    [ "$(date +%s)" -lt "$limit" ] || fail "$DRAIN_STREAM_DEST still in dir1's table $((TIMEOUT + 20)) s after the drain started: $(ipvs_rules dir1 | tr '\n' ';')"
    sleep 0.2
done
t1="$(cut -d' ' -f1 /proc/uptime)"
waited="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
awk -v w="$waited" -v t="$TIMEOUT" 'BEGIN { exit !(w >= t) }' \
    || fail "$DRAIN_STREAM_DEST removed ${waited} s after its RealServer was deleted, before the ${TIMEOUT} s deadline"
_drain_stream_grew "$lines" || fail "the stream did not flow during the drain ($lines lines at its start, $(_drain_stream_lines) at its end)"
echo "ok: the stream flowed through the drain ($lines -> $(_drain_stream_lines) lines); $DRAIN_STREAM_DEST removed after ${waited} s"
echo "$DRAINED" | ipvs_expect dir1 5
drain_log_has dir1 "drain ended" "$DRAIN_STREAM_DEST" "deadline passed" \
    || fail "dir1's agent did not log the drain of $DRAIN_STREAM_DEST ending at its deadline: $(grep -F 'drain' "$(_agent_logs)/dir1.log" | tail -n 3)"

# Cut: the client's next segment finds no destination; the director answers
# with a reset and the client's nc ends.
_stream_cut() { ! drain_stream_alive; }
wait_until 15 _stream_cut || fail "the stream still runs after its destination was removed at the deadline"
echo "ok: the stream was cut at the deadline"
drain_new_conns "$VIP" 2

# Inactive: the destination is back at weight 0 and stays there; new
# connections avoid it. Active: its weight is back.
rs_state Inactive
echo "$DRAINED
-a -t $VIP:9000 -r $DRAIN_STREAM_DEST -m -w 0" | ipvs_expect dir1 30
before="$(drain_conns_to "$VIP:9000" "$DRAIN_STREAM_DEST")"
drain_new_conns "$VIP" 4
expect_eq "entries to the inactive $DRAIN_STREAM_DEST after 4 new connections" "$before" \
    "$(drain_conns_to "$VIP:9000" "$DRAIN_STREAM_DEST")"
_drains="$(grep -cF 'drain started' "$(_agent_logs)/dir1.log")"
expect_eq "drains started (Inactive is not a drain)" 1 "$_drains"
rs_state Active
echo "$DRAINED
-a -t $VIP:9000 -r $DRAIN_STREAM_DEST -m -w 1" | ipvs_expect dir1 30
agent_alive dir1 || fail "agent on dir1 died"
