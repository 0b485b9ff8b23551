# IPv4 NAT with the director's VIP held as a local route (--vip-mode route):
# no address on dir1, a `local` route in the local table with protocol 76
# instead. The router finds the VIP on-link, so it must get an ARP answer for
# it; traffic must flow through IPVS both ways. A restarted agent keeps the
# route, a foreign local route is left alone, and removing the VirtualService
# removes the agent's route only.
. /lab/scenario.sh
VIP=203.0.113.10
FOREIGN=203.0.113.98
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
ip -n dir1 route add local "$FOREIGN/32" dev eth0 table local proto static || fail "cannot add the foreign local route"

# local_route NODE ADDR PROTO: the device of NODE's local route to ADDR with
# protocol PROTO (empty when none).
local_route() {
    ip -n "$1" route show table local type local proto "$3" \
        | awk -v a="$2" '{ hit = 0; for (i = 1; i < NF; i++) { if ($i == a) hit = 1; if (hit && $i == "dev") print $(i + 1) } }'
}
local_route_held() { [ -n "$(local_route "$1" "$2" "$3")" ]; }

manifest_sched_vs web-route "$VIP" 8080 rr
for r in rs1 rs2 rs3; do manifest_sched_rs web-route "$r" 1 80; done
WANT="$(sched_rules "$VIP:8080" rr 80 rs1=1 rs2=1 rs3=1)"
agent_start dir1 --vip-mode route
echo "$WANT" | ipvs_expect dir1 30
wait_until 15 local_route_held dir1 "$VIP" 76 || true
expect_eq "device of dir1's local route to $VIP (proto 76)" eth0 "$(local_route dir1 "$VIP" 76)"
expect_eq "address holding $VIP on dir1" "" "$(addr_dev dir1 "$VIP")"
ip -n router neigh flush dev lan0 2>/dev/null || true

fetch_dist 30 "http://$VIP:8080/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done
mac_dir1="$(ip -n dir1 -o link show dev eth0 | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')"
expect_eq "router's neighbour entry for $VIP (dir1's MAC)" "$mac_dir1" \
    "$(ip -n router neigh show "$VIP" | sed -n 's|.*lladdr \([0-9a-f:]*\).*|\1|p')"
ipvs_wait_conns dir1 -t "$VIP:8080" 30
out="$(ipvs_svc_stat dir1 -t "$VIP:8080" outpkts)"
[ "$out" -gt 0 ] || fail "director OutPkts is $out: the replies did not go through it"
echo "ok: director OutPkts = $out"

# A restart adopts the route: nothing is rewritten, traffic keeps flowing.
agent_stop dir1
agent_start dir1 --vip-mode route
sleep $((LAB_AGENT_RESYNC * 2 + 1))
agent_alive dir1 || fail "restarted agent on dir1 died"
echo "$WANT" | ipvs_expect dir1 10
expect_eq "device of dir1's local route to $VIP after the restart" eth0 "$(local_route dir1 "$VIP" 76)"
ops="$(awk '/^=== agent start/ { n++ } n == 2 && /sync done/ { sub(/.* ops=/, ""); sub(/ .*/, ""); print; exit }' "$(_agent_logs)/dir1.log")"
expect_eq "writes in the restarted agent's first sync" 0 "$ops"
fetch_dist 6 "http://$VIP:8080/"
expect_no_errors

# Gone: the agent's route goes, the foreign one stays.
manifest_remove web-route
ipvs_expect dir1 30 </dev/null
wait_until 15 test -z "$(local_route dir1 "$VIP" 76)" || fail "dir1 still routes $VIP locally: $(ip -n dir1 route show table local proto 76 | tr '\n' ' ')"
echo "ok: the agent's local route to $VIP is gone"
expect_eq "device of the foreign local route to $FOREIGN" eth0 "$(local_route dir1 "$FOREIGN" static)"
agent_alive dir1 || fail "agent on dir1 died"
