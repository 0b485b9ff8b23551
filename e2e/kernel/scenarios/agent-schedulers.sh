# Every scheduler the 6.1 kernel has, set through a VirtualService and applied
# by the agent in place (the service keeps existing), with traffic after each
# change; then wrr's split by weight (1:3:2 over 240 requests, ±10%).
. /lab/scenario.sh
VIP=203.0.113.40
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
vs() {
manifest_write sched <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: sched
  namespace: default
spec:
  address: $VIP
  port: 8080
  scheduler: $1
  forwarding: NAT
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: sched
YAML
}
for rw in 1:1 2:3 3:2; do
    i="${rw%%:*}"
manifest_write "sched-$i" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: sched-$i
  namespace: default
  labels:
    app: sched
spec:
  address: 10.0.1.1$i
  port: 80
  weight: ${rw#*:}
YAML
done
vs rr
agent_start dir1
for s in rr wrr lc wlc lblc lblcr dh sh sed nq mh fo ovf; do
    vs "$s"
    ipvs_expect dir1 30 <<RULES
-A -t $VIP:8080 -s $s
-a -t $VIP:8080 -r 10.0.1.11:80 -m -w 1
-a -t $VIP:8080 -r 10.0.1.12:80 -m -w 3
-a -t $VIP:8080 -r 10.0.1.13:80 -m -w 2
RULES
    fetch_dist 6 "http://$VIP:8080/"
    expect_no_errors
done
vs wrr
ipvs_expect dir1 30 <<RULES
-A -t $VIP:8080 -s wrr
-a -t $VIP:8080 -r 10.0.1.11:80 -m -w 1
-a -t $VIP:8080 -r 10.0.1.12:80 -m -w 3
-a -t $VIP:8080 -r 10.0.1.13:80 -m -w 2
RULES
fetch_dist 240 "http://$VIP:8080/"
expect_no_errors
expect_within "requests answered by rs1 (weight 1)" 40 "$(dist_of rs1)" 10
expect_within "requests answered by rs2 (weight 3)" 120 "$(dist_of rs2)" 10
expect_within "requests answered by rs3 (weight 2)" 80 "$(dist_of rs3)" 10
agent_alive dir1 || fail "agent on dir1 died"
