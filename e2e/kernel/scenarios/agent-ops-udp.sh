# One-packet scheduling (schedulerFlags: [one-packet], ipvsadm -o) driven by
# the node agent on a DR UDP service (rr over rs1-rs3, lab-dns answering with
# its name). One client flow (one source port) sends 6 queries each time:
# without the flag they all go to one realserver and the director keeps one
# connection entry for the flow; with the flag (set on the running service)
# each datagram is scheduled on its own, 2/2/2, and no entry is kept; with the
# flag removed again the next flow sticks again.
# lab-timeout: 150
. /lab/scenario.sh
VIP=203.0.113.73
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up

# ops_vs FLAGS: the VirtualService with spec.schedulerFlags FLAGS (flow list).
ops_vs() {
manifest_write udp-ops <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: udp-ops, namespace: default}
spec:
  address: $VIP
  port: 53
  protocol: UDP
  scheduler: rr
  schedulerFlags: $1
  forwarding: DR
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: udp-ops}}
YAML
}
# ops_rules [FLAG]: the service as `ipvsadm -Sn` shows it, FLAG after the scheduler.
ops_rules() {
    echo "-A -u $VIP:53 -s rr${1:+ $1}"
    for i in 1 2 3; do echo "-a -u $VIP:53 -r 10.0.1.1$i:53 -g -w 1"; done
}
# ops_flow_entries SPORT: entries in dir1's connection table for the client's
# flow from SPORT to the VIP.
ops_flow_entries() {
    ipvs dir1 -Lnc | awk -v s="$(topo_ip4 client):$1" -v v="$VIP:53" '$1 == "UDP" && $4 == s && $5 == v' | wc -l
}

ops_vs "[]"
for i in 1 2 3; do manifest_rs_node "udp-ops-rs$i" udp-ops "rs$i"; done
for n in dir1 rs1 rs2 rs3; do agent_start "$n"; done
ops_rules | ipvs_expect dir1 30
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
for r in rs1 rs2 rs3; do
    wait_until 15 addr_held "$r" "$VIP" lo || fail "$r does not hold $VIP on lo"
    rs_dns_start "$r" "$VIP:53"
done

udp_dist 1 "$VIP:53" 23000 6
expect_no_errors
expect_sticky
expect_eq "connection entries for the flow without one-packet" 1 "$(ops_flow_entries 23000)"

ops_vs "[one-packet]"
ops_rules -o | ipvs_expect dir1 30
udp_dist 1 "$VIP:53" 23100 6
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "datagrams of one flow answered by $r with one-packet (rr)" 2 "$(dist_of "$r")"; done
expect_eq "connection entries for the flow with one-packet" 0 "$(ops_flow_entries 23100)"

ops_vs "[]"
ops_rules | ipvs_expect dir1 30
udp_dist 1 "$VIP:53" 23200 6
expect_no_errors
expect_sticky
expect_eq "connection entries for the flow after one-packet was removed" 1 "$(ops_flow_entries 23200)"
for n in dir1 rs1 rs2 rs3; do agent_alive "$n" || fail "agent on $n died"; done
