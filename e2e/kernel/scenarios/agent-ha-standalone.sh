# Director HA in standalone mode: dir1 and dir2 both direct one DR VIP, with
# static roles (--ha-role). Only the active holds the VIP and answers ARP for
# it; the standby has the same IPVS service, warm. Swapping the roles (both
# agents restarted with swapped flags) moves the VIP, the new active's
# gratuitous ARP moves the router's neighbour entry without the router asking,
# and the client is still served. Last, the active restarted without HA
# settings refuses the VIP of two directors, naming the fix, instead of
# announcing it a second time.
. /lab/scenario.sh
VIP=203.0.113.30
agent_lab_up
ha_pair_setup web-ha "$VIP" 80
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
expect_no_vip dir2 "$VIP"
# The active holds the VIP with a finite lifetime, renewed by the agent.
lft="$(/usr/sbin/ip -n dir1 -d addr show dev eth0 | grep -A1 " $VIP/" | sed -n 's/.*valid_lft \([^ ]*\).*/\1/p')"
case "$lft" in
    [0-9]*sec) echo "ok: $VIP on dir1 has valid_lft $lft" ;;
    *) fail "$VIP on dir1 has valid_lft '$lft', expected a finite lifetime" ;;
esac
sleep 3
expect_vip_on dir1 "$VIP"

arp_responders() {
    nsx router arping -I lan0 -c 2 -w 2 "$VIP" 2>&1 | sed -n 's/.*reply from .* \[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
router_mac_of_vip() {
    /usr/sbin/ip -n router neigh show "$VIP" dev lan0 | sed -n 's/.*lladdr \([0-9a-f:]*\).*/\1/p'
}
expect_eq "ARP responders for $VIP (active dir1)" "$(topo_mac dir1)" "$(arp_responders)"
fetch_dist 30 "http://$VIP/"
expect_no_errors
expect_eq "router's neighbour entry for $VIP" "$(topo_mac dir1)" "$(router_mac_of_vip)"
ha="$(nsx dir1 timeout 3 wget -q -O - http://127.0.0.1:9477/ha 2>/dev/null)"
case "$ha" in
    *'"active":["203.0.113.30"]'*) echo "ok: dir1 /ha: $ha" ;;
    *) fail "dir1 /ha does not name $VIP active: $ha" ;;
esac
grep -q 'director role changed' "$(_agent_logs)/dir1.log" || fail "dir1 logged no role change"

# Swap: the old active steps down first, then the new one takes the VIP and
# announces it. The router sends nothing in between, so only the gratuitous
# ARP can move its neighbour entry. Without its agent, the old active loses
# the VIP by itself when the lifetime runs out.
agent_stop dir1
wait_until 6 addr_gone dir1 "$VIP" || true
expect_no_vip dir1 "$VIP"
agent_start dir1 --ha-role "$VIP=standby"
agent_stop dir2
agent_start dir2 --ha-role "$VIP=active"
wait_until 15 addr_held dir2 "$VIP" || true
expect_vip_on dir2 "$VIP"
wait_until 10 test "$(router_mac_of_vip)" = "$(topo_mac dir2)" || true
expect_eq "router's neighbour entry for $VIP after the gratuitous ARP" "$(topo_mac dir2)" "$(router_mac_of_vip)"
echo "$RULES" | ipvs_expect dir1 5
expect_eq "ARP responders for $VIP (active dir2)" "$(topo_mac dir2)" "$(arp_responders)"
fetch_dist 30 "http://$VIP/"
expect_no_errors
for n in dir1 dir2 rs1 rs2 rs3; do agent_alive "$n" || fail "agent on $n died"; done

# Without HA settings, two directors of one VIP are an error on its
# VirtualService, not a VIP announced twice: dir2 (the active) restarted
# without --ha-role releases the VIP and says which flags it needs.
agent_stop dir2
agent_start dir2
refused() {
    nsx dir2 timeout 3 wget -q -O - http://127.0.0.1:9477/status 2>/dev/null | grep -q "VIP $VIP has 2 directors (dir1, dir2).*--ha-role $VIP=active"
}
wait_until 15 refused || fail "dir2 without HA settings does not report the VIP of two directors as refused (/status: $(nsx dir2 timeout 3 wget -q -O - http://127.0.0.1:9477/status 2>/dev/null | head -c 400))"
echo "ok: dir2 without HA settings refuses $VIP and names --ha-role"
wait_until 10 addr_gone dir2 "$VIP" || true
expect_no_vip dir2 "$VIP"
echo "$RULES" | ipvs_expect dir2 5
