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
  rules_dr | sc_wait_ipvs "$d" "$SVC_DR" 90
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
  sc_fetch 60 "$URL_DR"
  sc_expect_dist rs1=20 rs2=40
  sc_wait_conns "$d" "$SVC_DR" 60
  expect_eq "director OutPkts of $SVC_DR (replies bypass it)" 0 "$(sc_svc_stat "$d" "$SVC_DR" outpkts)"
  sc_delete dr
  sc_wait_ipvs "$d" "$SVC_DR" 60 </dev/null
}

