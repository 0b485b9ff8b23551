# shellcheck shell=bash
# examples/dr.yaml as it is: direct routing to the nodes rs1 and rs2 (weights
# 1 and 2, wrr). Their agents put the VIP on lo with arp_ignore=1 and
# arp_announce=2; replies bypass the director.
scenario dr sc_dr
sc_dr() {
  sc_reset
  local d r
  d=$(lab_node dir1)
  sc_apply dr
  rules_dr | sc_wait_ipvs "$d" "$SVC_DR" 90 || exit 1
  sc_wait_vs web-dr 2 60
  k get "$VS_GROUP" web-dr -n default
  for r in rs1 rs2; do
    r=$(lab_node "$r")
    sc_retry 30 _sc_vip_on "$r" "$VIP_DR" lo || sc_fail "$r does not hold $VIP_DR on lo: $(in_node "$r" ip -o addr show | awk '{print $2, $4}' | tr '\n' ' ')"
    sc_ok "$r holds $VIP_DR on lo"
    expect_eq "effective arp_ignore on $r eth0" 1 "$(sc_sysctl_eff "$r" eth0 arp_ignore)"
    expect_eq "effective arp_announce on $r eth0" 2 "$(sc_sysctl_eff "$r" eth0 arp_announce)"
    expect_eq "IPVS rules on realserver $r" "" "$(sc_ipvs "$r")"
  done
  sc_retry 30 _sc_vip_on "$d" "$VIP_DR" || sc_fail "director $d does not hold $VIP_DR"
  # Only the director may answer ARP for the VIP on the segment.
  local peer iface mac resp
  read -r peer iface <<<"$(lab_arp_peer)"
  mac=$(in_node "$d" ip -o link show dev eth0 | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p')
  resp=$(in_node "$peer" arping -I "$iface" -c 2 -w 3 "$VIP_DR" 2>&1 |
    sed -n 's/.*reply from .* \[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f' | sort -u | tr '\n' ' ')
  expect_eq "MACs answering ARP for $VIP_DR (arping from $peer)" "$mac " "$resp"
  sc_fetch 60 "$URL_DR"
  sc_expect_dist rs1=20 rs2=40
  sc_wait_conns "$d" "$SVC_DR" 60
  expect_eq "director OutPkts of $SVC_DR (replies bypass it)" 0 "$(sc_svc_stat "$d" "$SVC_DR" outpkts)"
  sc_delete dr
  sc_wait_ipvs "$d" "$SVC_DR" 60 </dev/null
}

