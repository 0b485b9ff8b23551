# A restarted agent adopts what it programmed instead of flushing: after a
# SIGKILL the table and the VIP stay, traffic keeps flowing without the agent,
# and the new agent leaves the service in place (its counters are not reset)
# and still does not touch a rule it does not own.
. /lab/scenario.sh
VIP=203.0.113.10
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
ipvs dir1 -A -t 203.0.113.99:80 -s rr || fail "cannot add the foreign rule"
manifest_write web <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: web
  namespace: default
spec:
  address: 203.0.113.10
  port: 8080
  scheduler: rr
  forwarding: NAT
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: web
YAML
for i in 1 2 3; do
manifest_write "web-$i" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-$i
  namespace: default
  labels:
    app: web
spec:
  address: 10.0.1.1$i
  port: 80
YAML
done
WANT='-A -t 203.0.113.99:80 -s rr
-A -t 203.0.113.10:8080 -s rr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.12:80 -m -w 1
-a -t 203.0.113.10:8080 -r 10.0.1.13:80 -m -w 1'
agent_start dir1
echo "$WANT" | ipvs_expect dir1 30
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
fetch_dist 15 "http://$VIP:8080/"
expect_no_errors
ipvs_wait_conns dir1 -t "$VIP:8080" 15

agent_stop dir1 KILL
echo "$WANT" | ipvs_expect dir1 1
expect_vip_on dir1 "$VIP"
fetch_dist 6 "http://$VIP:8080/"
expect_no_errors
echo "ok: traffic flows while the agent is down"

agent_start dir1
# Give it time to sync (two resync periods), then compare.
sleep $((LAB_AGENT_RESYNC * 2 + 1))
agent_alive dir1 || fail "restarted agent on dir1 died"
echo "$WANT" | ipvs_expect dir1 10
expect_vip_on dir1 "$VIP"
ipvs_wait_conns dir1 -t "$VIP:8080" 21
echo "ok: service kept its counters across the restart (Conns $(ipvs_svc_stat dir1 -t "$VIP:8080" conns))"
fetch_dist 6 "http://$VIP:8080/"
expect_no_errors
