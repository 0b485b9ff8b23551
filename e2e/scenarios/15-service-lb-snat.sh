# shellcheck shell=bash
# Source NAT on the director (spec.sourceNat) through the agent's nftables
# table, applied with kubectl: a NAT VirtualService on 192.0.2.50:8080 whose
# realservers rs4 and rs5 sit behind the router with their default route via
# the router, not the director (like pods, which reply through their own
# node). With sourceNat off their replies bypass the director and every
# request fails; with it on the director masquerades the connections it
# forwards and every request is answered; off again, the agent's table is
# gone and the requests fail again.
#
# Only labs whose realservers can route around the director and whose nodes
# have `nft` (lab_has snat: the joined lab) register this scenario.
if lab_has snat; then
  scenario service-lb-snat sc_service_lb_snat
fi

SNAT_VIP=192.0.2.50
SNAT_SVC="-t $SNAT_VIP:8080"

# sc_snat_objects true|false: the VirtualService (sourceNat on or off) and
# its two RealServers.
sc_snat_objects() {
  local r
  {
    sc_vs_yaml web-snat "$SNAT_VIP" 8080 NAT web-snat lvs.lvs-operator.io/director=true "sourceNat: $1"
    for r in rs4 rs5; do
      sc_rs_yaml "web-snat-$r" web-snat "{address: $(lab_node_ip "$(lab_node "$r")"), port: 80}"
    done
  } | k apply -f - || sc_fail "kubectl apply of the source NAT objects failed"
}

# _sc_snat_rule NODE: the agent's table on NODE masquerades the VIP's port.
_sc_snat_rule() {
  in_node "$1" nft list table inet lvs-operator 2>/dev/null |
    grep -Eq "ct original ip daddr $SNAT_VIP ct original proto-dst 8080 masquerade"
}
_sc_snat_no_table() { ! in_node "$1" nft list tables | grep -qx 'table inet lvs-operator'; }

sc_service_lb_snat() {
  sc_reset
  local d
  d=$(lab_node dir1)
  in_node "$(lab_node rs4)" ip route show default | grep -q "via $(lab_node_ip "$d") " &&
    sc_fail "rs4's default route points at the director: the scenario needs one that does not"
  sc_snat_objects false
  sc_wait_ipvs "$d" "$SNAT_SVC" 90 <<RULES
-A $SNAT_SVC -s rr
-a $SNAT_SVC -r $(lab_node_ip "$(lab_node rs4)"):80 -m -w 1
-a $SNAT_SVC -r $(lab_node_ip "$(lab_node rs5)"):80 -m -w 1
RULES
  sc_wait_vs web-snat 2 60
  sc_retry 30 _sc_snat_no_table "$d" || sc_fail "table inet lvs-operator exists on $d without sourceNat"

  # Off: the replies bypass the director.
  sc_fetch 3 "http://$SNAT_VIP:8080/"
  expect_eq "requests answered without sourceNat ($FETCH_SUMMARY)" 0 $((3 - FETCH_ERR))

  # On: masqueraded to the director's address, answered through it.
  sc_snat_objects true
  sc_retry 60 _sc_snat_rule "$d" ||
    sc_fail "no masquerade rule for $SNAT_VIP:8080 in $d's table inet lvs-operator: $(in_node "$d" nft list ruleset 2>&1 | tr '\n' ';')"
  sc_ok "$d masquerades $SNAT_VIP:8080 (table inet lvs-operator)"
  sc_wait_vs web-snat 2 60
  sc_fetch 20 "http://$SNAT_VIP:8080/"
  sc_expect_dist rs4=10 rs5=10

  # Off again: the table goes and the requests fail again.
  sc_snat_objects false
  sc_retry 60 _sc_snat_no_table "$d" || sc_fail "table inet lvs-operator still on $d after sourceNat: false"
  sc_ok "table inet lvs-operator removed from $d"
  sc_fetch 2 "http://$SNAT_VIP:8080/"
  expect_eq "requests answered after sourceNat: false ($FETCH_SUMMARY)" 0 $((2 - FETCH_ERR))

  k delete "$VS_GROUP" web-snat -n default --wait=true --timeout=90s >/dev/null || sc_fail "cannot delete VirtualService web-snat"
  k delete "$RS_GROUP" web-snat-rs4 web-snat-rs5 -n default --wait=true --timeout=90s >/dev/null || sc_fail "cannot delete the RealServers"
  sc_wait_ipvs "$d" "$SNAT_SVC" 60 </dev/null
}
