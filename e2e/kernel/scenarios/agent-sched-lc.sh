# Schedulers lc and wlc driven by the node agent, each on its own VIP over the
# realservers' TCP echo port 9000 (RealServer weights rs1=1 rs2=3 rs3=2).
# First each service has one RealServer, which gets held-open connections:
# rs1 two on the lc service, rs2 three on the wlc service. Then the other
# RealServers are added and more connections held: they must go to the less
# loaded servers, so lc ends at 2/2/2 (rr would give rs1 a third) and wlc at
# 1/3/2 by weight (wrr would give rs2 a fourth).
. /lab/scenario.sh
LC=203.0.113.40
WLC=203.0.113.41
P=9000

# hold_more N VIP: N more idle connections from the client to VIP:$P, one at a
# time, each established before the next, on top of those already held there.
hold_more() {
    _base="$(client_conns_to "$2")"
    _k=0
    while [ "$_k" -lt "$1" ]; do
        nsx client sh -c "sleep 600 | nc $2 $P >/dev/null 2>&1 &"
        _k=$((_k + 1))
        wait_until 5 client_conns_at_least $((_base + _k)) "$2" \
            || fail "connection $((_base + _k)) to $2:$P not established"
    done
}
# client_conns_to VIP: the client's established TCP connections to VIP:$P
# (/proc/net/tcp holds the address as a host-order hex word).
client_conns_to() {
    _hex="$(echo "$1" | awk -F. '{ printf "%02X%02X%02X%02X:%04X", $4, $3, $2, $1, '"$P"' }')"
    nsx client cat /proc/net/tcp | awk -v r="$_hex" '$3 == r && $4 == "01"' | wc -l
}
client_conns_at_least() { [ "$(client_conns_to "$2")" -ge "$1" ]; }

agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_sched_vs lc "$LC" $P lc
manifest_sched_vs wlc "$WLC" $P wlc
manifest_sched_rs lc rs1 1 $P
manifest_sched_rs wlc rs2 3 $P
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$LC:$P" lc $P rs1=1)
$(sched_rules "$WLC:$P" wlc $P rs2=3)
RULES
ipvs_expect_sched dir1 -t "$LC:$P" lc
ipvs_expect_sched dir1 -t "$WLC:$P" wlc
hold_more 2 "$LC"
hold_more 3 "$WLC"
SCHED_VIP="$LC"; expect_active_conns $P rs1=2
SCHED_VIP="$WLC"; expect_active_conns $P rs2=3

manifest_sched_rs lc rs2 3 $P
manifest_sched_rs lc rs3 2 $P
manifest_sched_rs wlc rs1 1 $P
manifest_sched_rs wlc rs3 2 $P
ipvs_expect dir1 30 <<RULES
$(sched_rules "$LC:$P" lc $P rs1=1 rs2=3 rs3=2)
$(sched_rules "$WLC:$P" wlc $P rs1=1 rs2=3 rs3=2)
RULES
hold_more 4 "$LC"
hold_more 3 "$WLC"
SCHED_VIP="$LC"; expect_active_conns $P rs1=2 rs2=2 rs3=2
SCHED_VIP="$WLC"; expect_active_conns $P rs1=1 rs2=3 rs3=2
agent_alive dir1 || fail "agent on dir1 died"
