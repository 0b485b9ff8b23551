# Direct routing driven by the node agents: RealServers by nodeName (rs1-rs3),
# so the agents on those nodes put the VIP on lo with arp_ignore=1 and
# arp_announce=2. Only the director may answer ARP for the VIP, replies bypass
# it (OutPkts 0), and the realservers hold no IPVS rules.
. /lab/scenario.sh
VIP=203.0.113.20
agent_lab_up
manifest_write web-dr <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: web-dr
  namespace: default
spec:
  address: 203.0.113.20
  port: 80
  protocol: TCP
  scheduler: wrr
  forwarding: DR
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: web-dr
YAML
for i in 1 2 3; do
manifest_write "web-dr-rs$i" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-dr-rs$i
  namespace: default
  labels:
    app: web-dr
spec:
  nodeName: rs$i
  weight: $i
YAML
done
for n in dir1 rs1 rs2 rs3; do agent_start "$n"; done
ipvs_expect dir1 30 <<'RULES'
-A -t 203.0.113.20:80 -s wrr
-a -t 203.0.113.20:80 -r 10.0.1.11:80 -g -w 1
-a -t 203.0.113.20:80 -r 10.0.1.12:80 -g -w 2
-a -t 203.0.113.20:80 -r 10.0.1.13:80 -g -w 3
RULES
for r in rs1 rs2 rs3; do
    wait_until 15 addr_held "$r" "$VIP" lo || true
    expect_eq "interface holding $VIP on $r" lo "$(addr_dev "$r" "$VIP")"
    expect_eq "effective arp_ignore on $r eth0" 1 "$(sysctl_effective "$r" eth0 arp_ignore)"
    expect_eq "effective arp_announce on $r eth0" 2 "$(sysctl_effective "$r" eth0 arp_announce)"
    expect_eq "IPVS rules on realserver $r" "" "$(ipvs_rules "$r")"
done
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"

resp="$(nsx router arping -I lan0 -c 2 -w 2 "$VIP" 2>&1 | sed -n 's/.*reply from .* \[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f' | sort -u)"
expect_eq "ARP responders for $VIP" "$(topo_mac dir1)" "$(echo $resp)"

fetch_dist 60 "http://$VIP/"
expect_no_errors
expect_eq "requests answered by rs1 (weight 1)" 10 "$(dist_of rs1)"
expect_eq "requests answered by rs2 (weight 2)" 20 "$(dist_of rs2)"
expect_eq "requests answered by rs3 (weight 3)" 30 "$(dist_of rs3)"
ipvs_wait_conns dir1 -t "$VIP:80" 60
expect_eq "director OutPkts (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -t "$VIP:80" outpkts)"
