# shellcheck shell=bash
# examples/nat.yaml as it is: VIP 192.0.2.10:8080 masqueraded to three
# realservers on port 80, round robin.
scenario nat sc_nat
sc_nat() {
  sc_reset
  sc_up_nat
  k get "$VS_GROUP" web-nat -n default
  sc_fetch 60 "$URL_NAT"
  sc_expect_dist rs1=20 rs2=20 rs3=20
  # The director masquerades: the replies pass through it.
  sc_wait_conns "$(lab_node dir1)" "$SVC_NAT" 60
  local out
  out=$(sc_svc_stat "$(lab_node dir1)" "$SVC_NAT" outpkts)
  ((out > 0)) || sc_fail "director OutPkts of $SVC_NAT is $out: NAT replies did not pass the director"
  sc_ok "director OutPkts $out (replies through the director)"
  sc_delete nat
  sc_wait_ipvs "$(lab_node dir1)" "$SVC_NAT" 60 </dev/null
}
