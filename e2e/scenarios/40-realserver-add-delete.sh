# shellcheck shell=bash
# RealServer objects come and go: the director's destinations follow, and so
# does the traffic. Covers delete, create, and a label change that takes a
# RealServer out of the selector.
scenario realserver-add-delete sc_realserver_add_delete
sc_realserver_add_delete() {
  sc_reset
  local d
  d=$(lab_node dir1)
  sc_up_nat

  k delete "$RS_GROUP" web-nat-3 -n default --wait=true || sc_fail "kubectl delete realserver web-nat-3"
  rules_nat rr 1 1 - | sc_wait_ipvs "$d" "$SVC_NAT" 30 || exit 1
  sc_wait_vs web-nat 2 30
  sc_fetch 20 "$URL_NAT"
  sc_expect_dist rs1=10 rs2=10

  k label "$RS_GROUP" web-nat-2 -n default app=elsewhere --overwrite || sc_fail "kubectl label web-nat-2"
  rules_nat rr 1 - - | sc_wait_ipvs "$d" "$SVC_NAT" 30 || exit 1
  sc_wait_vs web-nat 1 30
  sc_fetch 10 "$URL_NAT"
  sc_expect_dist rs1=10

  k label "$RS_GROUP" web-nat-2 -n default app=web-nat --overwrite || sc_fail "kubectl label web-nat-2 back"
  k create -f - <<YAML || sc_fail "kubectl create realserver web-nat-3"
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-nat-3
  namespace: default
  labels:
    app: web-nat
spec:
  address: ${NAT_RS_ADDRS[2]}
  port: 80
  weight: 2
YAML
  rules_nat rr 1 1 2 | sc_wait_ipvs "$d" "$SVC_NAT" 30 || exit 1
  sc_wait_vs web-nat 3 30
  sc_fetch 30 "$URL_NAT"
  sc_expect_dist rs1=10 rs2=10 rs3=10
  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}
