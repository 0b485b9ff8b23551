# shellcheck shell=bash
# kubectl delete of the examples: every node goes back to what it was. The
# director's services and VIPs go, the DR realservers lose the VIP on lo and get
# their ARP sysctls back, the TUN realservers lose the tunnel VIP and get
# rp_filter back. A foreign service added with ipvsadm beforehand (with its
# own VIP) keeps its rule, its address and its traffic throughout.
scenario delete-cleanup sc_delete_cleanup
FOREIGN_VIP=192.0.2.99
sc_delete_cleanup() {
  sc_reset
  local d r n
  d=$(lab_node dir1)
  local rs3ip=${NAT_RS_ADDRS[2]}
  # The foreign service: NAT to rs3, set up by hand.
  in_node "$d" sh -c "ipvsadm -D -t $FOREIGN_VIP:80 2>/dev/null; ip addr del $FOREIGN_VIP/32 dev eth0 2>/dev/null
    ipvsadm -A -t $FOREIGN_VIP:80 -s rr && ipvsadm -a -t $FOREIGN_VIP:80 -r $rs3ip:80 -m -w 1 &&
    ip addr add $FOREIGN_VIP/32 dev eth0" || sc_fail "cannot add the foreign service on $d"
  local foreign
  foreign=$(sc_ipvs "$d" "-t $FOREIGN_VIP:80")
  echo "foreign rules: $foreign"
  sc_fetch 5 "http://$FOREIGN_VIP/"
  sc_expect_dist rs3=5

  # What the realserver nodes had before.
  declare -A sysctls=()
  for r in rs1 rs2; do
    r=$(lab_node "$r")
    sysctls[$r.ai.all]=$(sc_sysctl "$r" all arp_ignore) sysctls[$r.ai.eth0]=$(sc_sysctl "$r" eth0 arp_ignore)
    sysctls[$r.aa.all]=$(sc_sysctl "$r" all arp_announce) sysctls[$r.aa.eth0]=$(sc_sysctl "$r" eth0 arp_announce)
  done
  for r in rs4 rs5; do
    r=$(lab_node "$r")
    sysctls[$r.rpf.all]=$(sc_sysctl "$r" all rp_filter)
  done

  sc_apply nat
  sc_apply dr
  sc_apply tun
  rules_nat | sc_wait_ipvs "$d" "$SVC_NAT" 90 || exit 1
  rules_dr | sc_wait_ipvs "$d" "$SVC_DR" 30 || exit 1
  rules_tun | sc_wait_ipvs "$d" "$SVC_TUN" 30 || exit 1
  sc_wait_vs web-nat 3 60
  sc_wait_vs web-dr 2 60
  sc_wait_vs web-tun 2 60
  for r in rs1 rs2; do sc_retry 30 _sc_vip_on "$(lab_node "$r")" "$VIP_DR" lo || sc_fail "$r has no $VIP_DR on lo"; done
  for r in rs4 rs5; do sc_retry 30 _sc_vip_on "$(lab_node "$r")" "$VIP_TUN" || sc_fail "$r has no $VIP_TUN"; done
  sc_fetch 6 "$URL_NAT"; sc_expect_no_errors
  sc_fetch 6 "$URL_DR"; sc_expect_no_errors
  sc_fetch 6 "$URL_TUN"; sc_expect_no_errors
  k get "$VS_GROUP" -n default

  k delete -f "$(lab_manifest nat)" -f "$(lab_manifest dr)" -f "$(lab_manifest tun)" --wait=true --timeout=90s ||
    sc_fail "kubectl delete of the examples failed"
  for n in web-nat web-dr web-tun; do sc_wait_gone "$VS_GROUP" "$n" 60; done
  sc_ok "VirtualServices gone (finalizers done)"
  for svc in "$SVC_NAT" "$SVC_DR" "$SVC_TUN"; do sc_wait_ipvs "$d" "$svc" 30 </dev/null; done
  expect_eq "foreign rules on $d" "$foreign" "$(sc_ipvs "$d" "-t $FOREIGN_VIP:80")"
  for v in "$VIP_NAT" "$VIP_DR" "$VIP_TUN"; do
    sc_retry 30 _sc_vip_absent "$d" "$v" || sc_fail "director $d still holds $v"
  done
  _sc_vip_on "$d" "$FOREIGN_VIP" eth0 || sc_fail "the foreign VIP $FOREIGN_VIP is gone from $d"
  sc_ok "director: only the foreign service and VIP are left"
  for r in rs1 rs2; do
    r=$(lab_node "$r")
    sc_retry 30 _sc_vip_absent "$r" "$VIP_DR" || sc_fail "$r still holds $VIP_DR"
    expect_eq "arp_ignore (all) on $r restored" "${sysctls[$r.ai.all]}" "$(sc_sysctl "$r" all arp_ignore)"
    expect_eq "arp_ignore (eth0) on $r restored" "${sysctls[$r.ai.eth0]}" "$(sc_sysctl "$r" eth0 arp_ignore)"
    expect_eq "arp_announce (all) on $r restored" "${sysctls[$r.aa.all]}" "$(sc_sysctl "$r" all arp_announce)"
    expect_eq "arp_announce (eth0) on $r restored" "${sysctls[$r.aa.eth0]}" "$(sc_sysctl "$r" eth0 arp_announce)"
  done
  for r in rs4 rs5; do
    r=$(lab_node "$r")
    sc_retry 30 _sc_vip_absent "$r" "$VIP_TUN" || sc_fail "$r still holds $VIP_TUN"
    expect_eq "rp_filter (all) on $r restored" "${sysctls[$r.rpf.all]}" "$(sc_sysctl "$r" all rp_filter)"
  done
  sc_fetch 3 "$URL_NAT"
  expect_eq "requests to the deleted NAT VIP that failed" 3 "$FETCH_ERR"
  sc_fetch 5 "http://$FOREIGN_VIP/"
  sc_expect_dist rs3=5
  in_node "$d" sh -c "ipvsadm -D -t $FOREIGN_VIP:80; ip addr del $FOREIGN_VIP/32 dev eth0" || true
}
_sc_vip_absent() { ! _sc_vip_on "$@"; }
