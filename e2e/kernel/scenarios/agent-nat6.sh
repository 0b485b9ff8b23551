# IPv6 NAT driven by the node agent: VIP [2001:db8:f::10]:8080 -> rs1..rs3
# [..]:80 (the router routes 2001:db8:f::/64 to dir1).
. /lab/scenario.sh
VIP=2001:db8:f::10
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
manifest_write web-nat6 <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: web-nat6
  namespace: default
spec:
  address: 2001:db8:f::10
  port: 8080
  scheduler: rr
  forwarding: NAT
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: web-nat6
YAML
for i in 1 2 3; do
manifest_write "web-nat6-$i" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-nat6-$i
  namespace: default
  labels:
    app: web-nat6
spec:
  address: 2001:db8:1::1$i
  port: 80
YAML
done
agent_start dir1
ipvs_expect dir1 30 <<'RULES'
-A -t [2001:db8:f::10]:8080 -s rr
-a -t [2001:db8:f::10]:8080 -r [2001:db8:1::11]:80 -m -w 1
-a -t [2001:db8:f::10]:8080 -r [2001:db8:1::12]:80 -m -w 1
-a -t [2001:db8:f::10]:8080 -r [2001:db8:1::13]:80 -m -w 1
RULES
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
fetch_dist 30 "http://[$VIP]:8080/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done
ipvs_wait_conns dir1 -t "[$VIP]:8080" 30
out="$(ipvs_svc_stat dir1 -t "[$VIP]:8080" outpkts)"
[ "$out" -gt 0 ] || fail "director OutPkts is $out: the replies did not go through it"
echo "ok: director OutPkts = $out"
