# One-packet scheduling (schedulerFlags: [one-packet], ipvsadm -o) driven by
# the node agent on a DR UDP service (rr over rs1-rs3, lab-dns answering with
# its name). One client flow (one source port) sends 6 queries each time:
# without the flag they all go to one realserver and the director keeps one
# connection entry for the flow; with the flag (set on the running service)
# each datagram is scheduled on its own, 2/2/2, and no entry is kept; with the
# flag removed again the next flow sticks again. Under NAT the director keeps
# no entry to rewrite the replies with, so one-packet suits one-way UDP there:
# a NAT service with the flag spreads one flow's datagrams 2/2/2, and the
# realservers' replies never reach the client (what the README tells users).
# lab-timeout: 150
. /lab/scenario.sh
VIP=203.0.113.73
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up

# ops_vs FLAGS [NAME VIP FORWARDING]: VirtualService NAME (default udp-ops)
# on VIP:53/UDP (default $VIP) with FORWARDING (default DR) and
# spec.schedulerFlags FLAGS (a flow list), selecting RealServers app=NAME.
ops_vs() {
manifest_vs "${2:-udp-ops}" "${3:-$VIP}" 53 rr "${4:-DR}" UDP "schedulerFlags: $1"
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

NAT_VIP=203.0.113.74
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
ops_vs "[one-packet]" udp-ops-nat "$NAT_VIP" NAT
for r in rs1 rs2 rs3; do
    manifest_rs "udp-ops-nat-$r" udp-ops-nat "{address: $(topo_ip4 "$r"), port: 53}"
    rs_dns_start "$r" "$(topo_ip4 "$r"):53"
done
ipvs_expect dir1 30 <<RULES
$(ops_rules)
-A -u $NAT_VIP:53 -s rr -o
-a -u $NAT_VIP:53 -r 10.0.1.11:53 -m -w 1
-a -u $NAT_VIP:53 -r 10.0.1.12:53 -m -w 1
-a -u $NAT_VIP:53 -r 10.0.1.13:53 -m -w 1
RULES
wait_until 15 addr_held dir1 "$NAT_VIP" || fail "dir1 does not hold $NAT_VIP"
udp_dist 1 "$NAT_VIP:53" 23300 6
expect_eq "one-packet queries under NAT left unanswered (no entry to rewrite the replies with)" 6 "$DIST_ERR"
ipvs_wait_conns dir1 -u "$NAT_VIP:53" 6
for i in 1 2 3; do
    expect_eq "datagrams of one flow sent to rs$i under NAT with one-packet (rr)" 2 \
        "$(ipvs dir1 -Ln --stats --exact -u "$NAT_VIP:53" | awk -v d="10.0.1.1$i:53" '$1 == "->" && $2 == d { print $4 }')"
done
for n in dir1 rs1 rs2 rs3; do agent_alive "$n" || fail "agent on $n died"; done
