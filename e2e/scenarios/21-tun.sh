# shellcheck shell=bash
# examples/tun.yaml as it is: IP-in-IP tunnelling to the nodes rs4 and rs5 in
# another subnet (wlc). Their agents hold the VIP on the ipip device with
# rp_filter relaxed; replies bypass the director.
scenario tun sc_tun
sc_tun() {
  sc_reset
  local d r dev rpf
  d=$(lab_node dir1)
  sc_apply tun
  rules_tun | sc_wait_ipvs "$d" "$SVC_TUN" 90 || exit 1
  sc_wait_vs web-tun 2 60
  k get "$VS_GROUP" web-tun -n default
  for r in rs4 rs5; do
    r=$(lab_node "$r")
    sc_retry 30 _sc_vip_on "$r" "$VIP_TUN" || sc_fail "$r does not hold $VIP_TUN"
    dev=$(sc_addr_dev "$r" "$VIP_TUN")
    in_node "$r" ip -d link show dev "$dev" | grep -q ipip ||
      sc_fail "$r holds $VIP_TUN on $dev, which is not an ipip device"
    rpf=$(sc_sysctl_eff "$r" "$dev" rp_filter)
    [[ $rpf != 1 ]] || sc_fail "rp_filter on $r $dev is strict (1)"
    sc_ok "$r holds $VIP_TUN on ipip device $dev, effective rp_filter $rpf"
  done
  sc_fetch 40 "$URL_TUN"
  sc_expect_no_errors
  local a b
  a=$(sc_got rs4) b=$(sc_got rs5)
  ((a + b == 40)) || sc_fail "answers from rs4 and rs5: $a + $b, expected 40 ($FETCH_SUMMARY)"
  ((a >= 10 && b >= 10)) || sc_fail "wlc over two idle realservers should spread: rs4=$a rs5=$b"
  sc_ok "spread over rs4=$a rs5=$b"
  sc_wait_conns "$d" "$SVC_TUN" 40
  expect_eq "director OutPkts of $SVC_TUN (replies bypass it)" 0 "$(sc_svc_stat "$d" "$SVC_TUN" outpkts)"
  sc_delete tun
  sc_wait_ipvs "$d" "$SVC_TUN" 60 </dev/null
}
