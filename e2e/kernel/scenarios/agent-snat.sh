# Source NAT on the director (spec.sourceNat), with realservers whose default
# route does NOT point at the director (they keep the router, like pods that
# reply through their own node): plain NAT fails, because the replies bypass
# the director and the client drops them; with sourceNat the agent's
# nftables table masquerades the forwarded connections to the director's
# address, the realservers see that address as the source and reply through
# the director. A foreign nftables table is left alone, and turning
# sourceNat off removes the agent's table.
. /lab/scenario.sh
VIP=203.0.113.10
DIR1_LAN=10.0.1.2
agent_lab_up
# rs1-rs3 keep their default route via the router (topo_up's default).

# A CGI on every realserver answers with the client address it sees.
for r in rs1 rs2 rs3; do
    mkdir -p "/run/lab/www/$r/cgi-bin"
    printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%%s\\n" "$REMOTE_ADDR"\n' \
        >"/run/lab/www/$r/cgi-bin/peer"
    chmod +x "/run/lab/www/$r/cgi-bin/peer"
done

# Someone else's table on the director.
nsx dir1 nft add table ip foreign || fail "cannot create the foreign nftables table"
nsx dir1 nft 'add chain ip foreign keep { type filter hook input priority 0; policy accept; }' \
    || fail "cannot create the foreign chain"

# snat_vs true|false: the NAT VirtualService, with sourceNat on or off.
snat_vs() {
    manifest_vs web-snat "$VIP" 8080 rr NAT TCP "sourceNat: $1"
}
snat_vs false
for r in rs1 rs2 rs3; do manifest_sched_rs web-snat "$r" 1 80; done
agent_start dir1
ipvs_expect dir1 30 <<'RULES'
-A -t 203.0.113.10:8080 -s rr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.13:80 -m -w 1
RULES
wait_until 15 addr_held dir1 "$VIP" || fail "dir1 does not hold $VIP"

ours_present() { nsx dir1 nft list tables | grep -qx 'table inet lvs-operator'; }
agent_masq() { nsx dir1 nft list table inet lvs-operator 2>/dev/null | grep -q masquerade; }
foreign_present() { nsx dir1 nft list tables | grep -qx 'table ip foreign'; }

# Without source NAT the replies bypass the director: every request fails.
ours_present && fail "the agent created its nftables table without sourceNat"
fetch_dist 3 "http://$VIP:8080/"
expect_eq "requests answered without sourceNat ($DIST_SUMMARY)" 0 $((3 - DIST_ERR))

# With source NAT they succeed, and the realservers see the director.
snat_vs true
# (The first write loads nf_tables modules; the kernel replays the batch.)
wait_until 30 agent_masq || fail "no masquerade rule in table inet lvs-operator on dir1 after sourceNat: true"
rules="$(nsx dir1 nft list table inet lvs-operator)"
echo "$rules"
echo "$rules" | grep -q 'type nat hook postrouting priority srcnat' \
    || fail "the agent's chain is not a srcnat postrouting nat chain"
# The guest has no /etc/protocols: nft prints tcp as 6.
echo "$rules" | grep -Eq "meta l4proto (tcp|6) ct original ip daddr $VIP ct original proto-dst 8080 masquerade" \
    || fail "no masquerade rule for $VIP:8080/tcp"
expect_eq "masquerade rules" 1 "$(echo "$rules" | grep -c masquerade)"
foreign_present || fail "the foreign nftables table is gone"
fetch_dist 30 "http://$VIP:8080/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done
# busybox httpd listens on IPv6 and writes IPv4 peers as [::ffff:a.b.c.d].
peer="$(topo_fetch "http://$VIP:8080/cgi-bin/peer" | tr -d '\r' | sed 's/^\[::ffff:\(.*\)\]$/\1/')"
expect_eq "client address the realserver sees" "$DIR1_LAN" "$peer"

# A rule deleted by hand comes back with the next full sync (SIGHUP).
h="$(nsx dir1 nft -a list chain inet lvs-operator postrouting | sed -n 's/.*masquerade.*# handle \([0-9]*\)$/\1/p')"
[ -n "$h" ] || fail "no handle for the masquerade rule"
nsx dir1 nft delete rule inet lvs-operator postrouting handle "$h" || fail "cannot delete the rule by hand"
agent_masq && fail "the rule deleted by hand is still there"
kill -HUP "$(cat "$LAB_AGENT_RUN/dir1.pid")" || fail "cannot signal the agent on dir1"
wait_until 30 agent_masq || fail "the agent did not restore its masquerade rule"

# Off again: the table goes, the foreign one stays, and NAT fails again.
snat_vs false
ours_gone() { ! ours_present; }
wait_until 30 ours_gone || fail "table inet lvs-operator still there after sourceNat: false"
foreign_present || fail "the foreign nftables table is gone"
nsx dir1 nft list chain ip foreign keep >/dev/null || fail "the foreign chain is gone"
fetch_dist 2 "http://$VIP:8080/"
expect_eq "requests answered after sourceNat: false ($DIST_SUMMARY)" 0 $((2 - DIST_ERR))
agent_alive dir1 || fail "agent on dir1 died"
