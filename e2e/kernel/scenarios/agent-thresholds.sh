# Connection thresholds driven by the node agent, on a UDP service (lab-dns on
# rs1 and rs2 names the server that answered). rr over rs1 (upperThreshold 3,
# lowerThreshold 2) and rs2 (no thresholds). Long-lived flows (a query every
# 200 ms, each from its own source port) hold connections until rs1 has 3:
#  - new flows all go to rs2 (rr alone would send rs1 every other one);
#  - one held flow on rs1 ends (rs1 at 2, not below lowerThreshold): new flows
#    still all go to rs2;
#  - a second one ends (rs1 at 1, below lowerThreshold): new flows reach rs1.
# The director's UDP connection timeout is lowered to 3 s (ipvsadm --set) so an
# ended flow's connection leaves the counts soon.
# lab-timeout: 150
. /lab/scenario.sh
VIP=203.0.113.57
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
dns_serve rs1 rs2
nsx dir1 ipvsadm --set 0 0 3 || fail "ipvsadm --set 0 0 3 (UDP timeout 3 s) was refused on dir1"
manifest_vs thr "$VIP" 53 rr NAT UDP
manifest_rs thr-rs1 thr "{address: 10.0.1.11, port: 53, upperThreshold: 3, lowerThreshold: 2}"
manifest_rs thr-rs2 thr "{address: 10.0.1.12, port: 53}"
agent_start dir1
ipvs_expect dir1 30 <<RULES
-A -u $VIP:53 -s rr
-a -u $VIP:53 -r 10.0.1.11:53 -m -w 1
-a -u $VIP:53 -r 10.0.1.12:53 -m -w 1
RULES
# ipvsadm -S leaves thresholds out; -L --thresholds lists them.
thresholds() { ipvs dir1 -Ln --thresholds -u "$VIP:53" | awk -v d="$1" '$1 == "->" && $2 == d { print $3 "/" $4; exit }'; }
expect_eq "upper/lower thresholds of rs1 in ipvsadm -Ln --thresholds" 3/2 "$(thresholds 10.0.1.11:53)"
expect_eq "upper/lower thresholds of rs2 in ipvsadm -Ln --thresholds" 0/0 "$(thresholds 10.0.1.12:53)"
wait_until 15 addr_held dir1 "$VIP" || fail "dir1 does not hold $VIP"

# rs1_conns: ActiveConn + InActConn of rs1 (the kernel's count for thresholds).
rs1_conns() {
    echo $(( $(ipvs_dest_field dir1 -u "$VIP:53" 10.0.1.11:53 active) + $(ipvs_dest_field dir1 -u "$VIP:53" 10.0.1.11:53 inactive) ))
}
rs1_conns_is() { [ "$(rs1_conns)" -eq "$1" ]; }
# hold_flow: a long-lived flow from a new source port, logged in /tmp/held.N;
# returns once it has an answer. Sets HELD_N (its number).
HELD_N=0
hold_flow() {
    HELD_N=$((HELD_N + 1))
    DNS_SPORT=$((DNS_SPORT + 1))
    nsx client sh -c "lab-dns query $VIP:53 $DNS_SPORT 100000 200 1000 >/tmp/held.$HELD_N 2>&1 & echo \$! >/tmp/held.$HELD_N.pid"
    wait_until 10 _held_answered "$HELD_N" || fail "held flow $HELD_N got no answer: $(head -n 3 "/tmp/held.$HELD_N")"
}
_held_answered() { grep -q ' rs[0-9]$' "/tmp/held.$1"; }
held_server() { awk '$2 != "ERR" { print $2; exit }' "/tmp/held.$1"; }
held_stop() { kill "$(cat "/tmp/held.$1.pid")"; }
# new_flows WHAT N: N new flows; prints and sets NEW_RS1 (how many reached rs1).
new_flows() {
    dns_flows "$2" "$VIP"
    NEW_RS1="$(printf '%s\n' "$FLOW_ANSWERS" | topo_count rs1)"
    _err="$(printf '%s\n' "$FLOW_ANSWERS" | topo_count ERR)"
    echo "$1: $2 new flows, rs1=$NEW_RS1 rs2=$(printf '%s\n' "$FLOW_ANSWERS" | topo_count rs2) ERR=$_err"
    expect_eq "unanswered new flows ($1)" 0 "$_err"
}

# Saturate rs1: held flows until three of them are on rs1.
on_rs1=""
while [ "$(echo $on_rs1 | wc -w)" -lt 3 ]; do
    [ "$HELD_N" -lt 8 ] || fail "8 held flows put only '$on_rs1' on rs1 (rr over two servers)"
    hold_flow
    [ "$(held_server "$HELD_N")" = rs1 ] && on_rs1="$on_rs1 $HELD_N"
done
wait_until 5 rs1_conns_is 3 || fail "rs1 has $(rs1_conns) connections with 3 held flows on it"
ipvs dir1 -Ln -u "$VIP:53"
echo "ok: held flows$on_rs1 of $HELD_N are on rs1 (3 = upperThreshold)"
new_flows "rs1 at upperThreshold" 6
expect_eq "new flows to rs1 at upperThreshold (rr alone gives it every other one)" 0 "$NEW_RS1"

set -- $on_rs1
held_stop "$1"
wait_until 10 rs1_conns_is 2 || fail "rs1 still has $(rs1_conns) connections after a held flow on it ended (expected 2)"
new_flows "rs1 at lowerThreshold" 6
expect_eq "new flows to rs1 at lowerThreshold (2, not below it)" 0 "$NEW_RS1"

held_stop "$2"
wait_until 10 rs1_conns_is 1 || fail "rs1 still has $(rs1_conns) connections after a second held flow on it ended (expected 1)"
new_flows "rs1 below lowerThreshold" 6
[ "$NEW_RS1" -ge 1 ] || fail "rs1 took none of 6 new flows with 1 connection, below lowerThreshold 2"
echo "ok: rs1 takes new flows again below lowerThreshold ($NEW_RS1 of 6)"

# The held flows stayed on their servers and were answered throughout.
i=1
while [ "$i" -le "$HELD_N" ]; do
    expect_eq "servers that answered held flow $i" 1 "$(awk '$2 != "ERR" { print $2 }' "/tmp/held.$i" | sort -u | wc -l)"
    i=$((i + 1))
done
for i in $(seq 1 "$HELD_N"); do kill "$(cat "/tmp/held.$i.pid")" 2>/dev/null; done
agent_alive dir1 || fail "agent on dir1 died"
