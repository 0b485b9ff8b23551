# IPv4 NAT driven by the node agent: the manifests of examples/nat.yaml on lab
# addresses. The agent on dir1 (the only node labelled director) must create
# the service with port mapping 8080 -> 80, hold the VIP, and traffic must flow
# through it both ways.
. /lab/scenario.sh
VIP=203.0.113.10
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_write web-nat <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: web-nat
  namespace: default
spec:
  address: 203.0.113.10
  port: 8080
  protocol: TCP
  scheduler: rr
  forwarding: NAT
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: web-nat
YAML
for i in 1 2 3; do
manifest_write "web-nat-$i" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-nat-$i
  namespace: default
  labels:
    app: web-nat
spec:
  address: 10.0.1.1$i
  port: 80
YAML
done
agent_start dir1
ipvs_expect dir1 30 <<'RULES'
-A -t 203.0.113.10:8080 -s rr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.13:80 -m -w 1
RULES
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
expect_no_vip dir2 "$VIP"

fetch_dist 30 "http://$VIP:8080/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done
ipvs_wait_conns dir1 -t "$VIP:8080" 30
out="$(ipvs_svc_stat dir1 -t "$VIP:8080" outpkts)"
[ "$out" -gt 0 ] || fail "director OutPkts is $out: the replies did not go through it"
echo "ok: director OutPkts = $out"
agent_alive dir1 || fail "agent on dir1 died"
