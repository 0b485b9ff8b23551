# Changes flow through: a weight edit is applied in place, a removed
# RealServer loses its destination, and deleting the VirtualService removes the
# service and releases the VIP on the director. Rules the agent does not own
# (added with ipvsadm beforehand) stay untouched throughout.
. /lab/scenario.sh
VIP=203.0.113.10
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
ipvs dir1 -A -t 203.0.113.99:80 -s rr && ipvs dir1 -a -t 203.0.113.99:80 -r 10.0.1.11:80 -m \
    || fail "cannot add the foreign rule"
FOREIGN='-A -t 203.0.113.99:80 -s rr
-a -t 203.0.113.99:80 -r 10.0.1.11:80 -m -w 1'
manifest_write web <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: web
  namespace: default
spec:
  address: 203.0.113.10
  port: 8080
  scheduler: wrr
  forwarding: NAT
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: web
YAML
rs() {
manifest_write "web-$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-$1
  namespace: default
  labels:
    app: web
spec:
  address: 10.0.1.1$1
  port: 80
  weight: $2
YAML
}
rs 1 1; rs 2 1; rs 3 1
agent_start dir1
ipvs_expect dir1 30 <<RULES
$FOREIGN
-A -t 203.0.113.10:8080 -s wrr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.13:80 -m -w 1
RULES
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
fetch_dist 9 "http://$VIP:8080/"
expect_no_errors

rs 2 5
ipvs_expect dir1 30 <<RULES
$FOREIGN
-A -t 203.0.113.10:8080 -s wrr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 5
-a -t 203.0.113.10:8080 -r 10.0.1.13:80 -m -w 1
RULES
ipvs_wait_conns dir1 -t "$VIP:8080" 9
conns="$(ipvs_svc_stat dir1 -t "$VIP:8080" conns)"
[ "$conns" -ge 9 ] || fail "service counters reset by a weight change (Conns $conns): it was re-created, not edited"
echo "ok: weight edited in place (Conns still $conns)"

manifest_remove web-3
ipvs_expect dir1 30 <<RULES
$FOREIGN
-A -t 203.0.113.10:8080 -s wrr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 5
RULES
fetch_dist 12 "http://$VIP:8080/"
expect_no_errors
expect_eq "requests answered by the removed rs3" 0 "$(dist_of rs3)"

manifest_remove web
ipvs_expect dir1 30 <<RULES
$FOREIGN
RULES
wait_until 15 addr_gone dir1 "$VIP" || true
expect_no_vip dir1 "$VIP"
agent_alive dir1 || fail "agent on dir1 died"
