# A firewall-mark service whose marking the agent owns: fwmark 7 over two VIPs
# (203.0.113.90 and .91), TCP ports 80 and 8000-8100, DR to rs1 and rs2 by
# nodeName. The agent on dir1 writes the marking rules into its nftables table
# (chain prerouting, priority mangle) and holds both VIPs; the agents on rs1
# and rs2 put both VIPs on lo. Requests to either VIP on port 80 are balanced
# by rr over both realservers and bypass the director on the way back; a port
# outside the match is not marked, so IPVS leaves it to dir1 itself (refused).
# A foreign nftables table stays untouched throughout, a marking rule deleted
# by hand comes back with the next full sync, and deleting the service removes
# the agent's table, the VIPs and the lo addresses.
. /lab/scenario.sh
VIP1=203.0.113.90 VIP2=203.0.113.91
agent_lab_up

# Someone else's table on the director, marking too (with another mark).
nsx dir1 nft add table ip foreign || fail "cannot create the foreign nftables table"
nsx dir1 nft 'add chain ip foreign pre { type filter hook prerouting priority -200; policy accept; }' \
    || fail "cannot create the foreign chain"
nsx dir1 nft 'add rule ip foreign pre ip daddr 198.51.100.200 meta mark set 0x63' \
    || fail "cannot add the foreign rule"
foreign_intact() { nsx dir1 nft list chain ip foreign pre | grep -q 'ip daddr 198.51.100.200 meta mark set 0x00000063'; }
foreign_intact || fail "the foreign rule does not read back as written"

manifest_write web-mark <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: web-mark, namespace: default}
spec:
  fwmark: 7
  fwmarkMatch:
    addresses: [$VIP1, $VIP2]
    protocol: TCP
    ports: [{port: 80}, {port: 8000, endPort: 8100}]
  scheduler: rr
  forwarding: DR
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: web-mark}}
YAML
for r in rs1 rs2; do manifest_rs_node "web-mark-$r" web-mark "$r"; done
for n in dir1 rs1 rs2; do agent_start "$n"; done
ipvs_expect dir1 30 <<'RULES'
-A -f 7 -s rr
-a -f 7 -r 10.0.1.11:0 -g -w 1
-a -f 7 -r 10.0.1.12:0 -g -w 1
RULES

marks() { nsx dir1 nft list chain inet lvs-operator prerouting 2>/dev/null | grep -c 'meta mark set 0x00000007'; }
marks_are() { [ "$(marks)" -eq "$1" ]; }
wait_until 30 marks_are 4 || fail "expected 4 marking rules (2 addresses x 2 port ranges) in chain inet lvs-operator prerouting on dir1, got $(marks): $(nsx dir1 nft list table inet lvs-operator 2>&1)"
rules="$(nsx dir1 nft list table inet lvs-operator)"
echo "$rules"
echo "$rules" | grep -q 'type filter hook prerouting priority mangle' \
    || fail "the marking chain is not a filter chain at prerouting, priority mangle"
# The guest has no /etc/protocols: nft may print tcp as 6.
for v in "$VIP1" "$VIP2"; do
    echo "$rules" | grep -Eq "ip daddr $v (tcp|th) dport 80 meta mark set 0x00000007" \
        || echo "$rules" | grep -Eq "ip daddr $v .*dport 80 .*meta mark set 0x00000007" \
        || fail "no marking rule for $v port 80"
    echo "$rules" | grep -Eq "ip daddr $v .*dport >= 8000 .*dport <= 8100 .*meta mark set 0x00000007|ip daddr $v .*dport 8000-8100 .*meta mark set 0x00000007" \
        || fail "no marking rule for $v ports 8000-8100"
done
foreign_intact || fail "the foreign rule changed"

for v in "$VIP1" "$VIP2"; do
    wait_until 15 addr_held dir1 "$v" || true
    expect_vip_on dir1 "$v"
    for r in rs1 rs2; do
        wait_until 15 addr_held "$r" "$v" lo || fail "$r does not hold $v on lo"
    done
done
for r in rs1 rs2; do
    expect_eq "effective arp_ignore on $r eth0" 1 "$(sysctl_effective "$r" eth0 arp_ignore)"
done

for v in "$VIP1" "$VIP2"; do
    fetch_dist 10 "http://$v/"
    expect_no_errors
    for r in rs1 rs2; do expect_eq "requests to $v answered by $r (rr)" 5 "$(dist_of "$r")"; done
done
ipvs_wait_conns dir1 -f 7 20
expect_eq "director OutPkts (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -f 7 outpkts)"
# Port 8080 is outside the match: no mark, no IPVS; dir1 has nothing there.
fetch_dist 2 "http://$VIP1:8080/"
expect_eq "requests to the unmarked port $VIP1:8080 answered ($DIST_SUMMARY)" 0 $((2 - DIST_ERR))

# A marking rule deleted by hand comes back with the next full sync (SIGHUP).
h="$(nsx dir1 nft -a list chain inet lvs-operator prerouting | sed -n 's/.*meta mark set.*# handle \([0-9]*\)$/\1/p' | head -n 1)"
[ -n "$h" ] || fail "no handle for a marking rule"
nsx dir1 nft delete rule inet lvs-operator prerouting handle "$h" || fail "cannot delete the rule by hand"
marks_are 3 || fail "the rule deleted by hand is still there"
kill -HUP "$(cat "$LAB_AGENT_RUN/dir1.pid")" || fail "cannot signal the agent on dir1"
wait_until 30 marks_are 4 || fail "the agent did not restore its marking rule ($(marks) rules)"
foreign_intact || fail "the foreign rule changed"

# The service goes: table, VIPs and lo addresses go; the foreign rule stays.
manifest_remove web-mark
ours_gone() { ! nsx dir1 nft list tables | grep -qx 'table inet lvs-operator'; }
wait_until 30 ours_gone || fail "table inet lvs-operator still there after the service was deleted"
for v in "$VIP1" "$VIP2"; do
    vip_gone() { ! addr_held "$1" "$v"; }
    for n in dir1 rs1 rs2; do wait_until 30 vip_gone "$n" || fail "$n still holds $v after the service was deleted"; done
done
foreign_intact || fail "the foreign rule changed"
for n in dir1 rs1 rs2; do agent_alive "$n" || fail "agent on $n died"; done
