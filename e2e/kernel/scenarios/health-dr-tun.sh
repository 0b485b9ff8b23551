# TCP health checks through DR and TUN services: the director probes each
# realserver's own address (rs1, rs2 on the lan for DR; rs4, rs5 behind the
# router for TUN), not the VIP. rs2 and rs5 stop listening: both get weight 0
# within fall*interval + 1 s and requests through either VIP avoid them without
# failing; once they listen again they are back and serve requests.
# lab-timeout: 180
. /lab/scenario.sh
INTERVAL=2 FALL=2 RISE=2
VIP_DR=203.0.113.64 VIP_TUN=203.0.113.65
check="{type: TCP, intervalSeconds: $INTERVAL, timeoutSeconds: 1, fall: $FALL, rise: $RISE}"
agent_lab_up
manifest_health_vs hdr "$VIP_DR" 80 TCP DR hdr "$check"
manifest_health_vs htun "$VIP_TUN" 80 TCP TUN htun "$check" "tunnel: {type: ipip}"
for r in rs1 rs2; do manifest_rs_node "hdr-$r" hdr "$r"; done
for r in rs4 rs5; do manifest_rs_node "htun-$r" htun "$r"; done
for n in rs1 rs2 rs4 rs5 dir1; do agent_start "$n"; done
ipvs_expect dir1 30 <<RULES
-A -t $VIP_DR:80 -s rr
-a -t $VIP_DR:80 -r 10.0.1.11:80 -g -w 1
-a -t $VIP_DR:80 -r 10.0.1.12:80 -g -w 1
-A -t $VIP_TUN:80 -s rr
-a -t $VIP_TUN:80 -r 10.0.2.14:80 -i -w 1 --tun-type ipip
-a -t $VIP_TUN:80 -r 10.0.2.15:80 -i -w 1 --tun-type ipip
RULES
for r in rs1 rs2; do wait_until 15 addr_held "$r" "$VIP_DR" lo || fail "$r does not hold $VIP_DR on lo"; done
for r in rs4 rs5; do wait_until 15 addr_held "$r" "$VIP_TUN" || fail "$r does not hold $VIP_TUN"; done
wait_until 15 addr_held dir1 "$VIP_DR" || fail "dir1 does not hold $VIP_DR"
wait_until 15 addr_held dir1 "$VIP_TUN" || fail "dir1 does not hold $VIP_TUN"
fetch_dist 4 "http://$VIP_DR/"
expect_no_errors
expect_eq "DR requests answered by rs2 before the stop" 2 "$(dist_of rs2)"
fetch_dist 4 "http://$VIP_TUN/"
expect_no_errors
expect_eq "TUN requests answered by rs5 before the stop" 2 "$(dist_of rs5)"
# Probes to rs1, rs2, rs4 and rs5 succeed: they reach the realservers' own
# addresses (the VIP is on their lo or tunnel device, never probed).
ok_probes() { agent_metrics dir1 | awk '/^lvs_agent_health_probes_total\{type="TCP",result="ok"\}/ { n = $2 } END { exit !(n >= 8) }'; }
wait_until 20 ok_probes || fail "fewer than 8 successful TCP checks from dir1: $(agent_metrics dir1 | grep health_probes)"
echo "ok: dir1's TCP checks of rs1, rs2, rs4 and rs5 succeed"

rs_httpd_stop rs2
t_stop="$STOPPED_AT"
rs_httpd_stop rs5
wait_dest_weight dir1 -t "$VIP_DR:80" 10.0.1.12:80 0 $(( FALL * INTERVAL + 10 ))
t_dr="$(now_cs)"
wait_dest_weight dir1 -t "$VIP_TUN:80" 10.0.2.15:80 0 5
t_tun="$(now_cs)"
bound=$(( (FALL * INTERVAL + 1) * 100 ))
expect_at_most "cs from the stop until rs2 (DR) is out" "$bound" $(( t_dr - t_stop ))
expect_at_most "cs from the stop until rs5 (TUN) is out" "$bound" $(( t_tun - t_stop ))
echo "summary: DR rs2 out after $(( t_dr - t_stop )) cs, TUN rs5 out after $(( t_tun - t_stop )) cs (bound $bound cs)"
expect_dest_state dir1 10.0.1.12:80 Failing
expect_dest_state dir1 10.0.2.15:80 Failing
fetch_dist 6 "http://$VIP_DR/"
expect_no_errors
expect_eq "DR requests answered by rs1 (rs2 failing)" 6 "$(dist_of rs1)"
fetch_dist 6 "http://$VIP_TUN/"
expect_no_errors
expect_eq "TUN requests answered by rs4 (rs5 failing)" 6 "$(dist_of rs4)"

rs_httpd_start rs2
rs_httpd_start rs5
wait_dest_weight dir1 -t "$VIP_DR:80" 10.0.1.12:80 1 $(( RISE * INTERVAL + 10 ))
wait_dest_weight dir1 -t "$VIP_TUN:80" 10.0.2.15:80 1 5
fetch_dist 4 "http://$VIP_DR/"
expect_no_errors
expect_eq "DR requests answered by rs2 (recovered)" 2 "$(dist_of rs2)"
fetch_dist 4 "http://$VIP_TUN/"
expect_no_errors
expect_eq "TUN requests answered by rs5 (recovered)" 2 "$(dist_of rs5)"
