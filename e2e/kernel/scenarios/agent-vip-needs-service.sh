# A director holds a VIP only while an IPVS service of the agent's at that
# address is in the kernel. Three VirtualServices on dir1:
#   good   203.0.113.10:8080 rr    programmed: VIP held, traffic flows;
#   taken  203.0.113.20:8080       someone else's ipvsadm rule holds the key:
#                                  foreign, so no VIP; once the rule is gone the
#                                  agent creates the service, then the VIP;
#   twos   203.0.113.30:8080 twos  the 6.1 kernel has no twos scheduler: the
#                                  service is refused, so no VIP.
# Then the good service is deleted by hand and IPVS refuses it back (its
# scheduler changed to twos): the VIP is withdrawn. The agent says why in its
# log (vip_withheld), and the foreign rule is never touched.
. /lab/scenario.sh
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
ipvs dir1 -A -t 203.0.113.20:8080 -s wlc || fail "cannot add the foreign rule"
manifest_sched_vs good 203.0.113.10 8080 rr
manifest_sched_vs taken 203.0.113.20 8080 rr
manifest_sched_vs twos 203.0.113.30 8080 twos
for n in good taken twos; do
    for rs in rs1 rs2; do manifest_sched_rs "$n" "$rs" 1 80; done
done
agent_start dir1
{ sched_rules 203.0.113.10:8080 rr 80 rs1=1 rs2=1; echo "-A -t 203.0.113.20:8080 -s wlc"; } \
    | ipvs_expect dir1 30
wait_until 15 addr_held dir1 203.0.113.10 || true
expect_vip_on dir1 203.0.113.10
log="$(_agent_logs)/dir1.log"
# The agent has reported both refusals once it logged the withheld VIPs.
wait_until 15 grep -q "VIP 203.0.113.30 is not held" "$log" || true
for vip in 203.0.113.20 203.0.113.30; do
    grep -q "VIP $vip is not held" "$log" || fail "the agent did not report the withheld VIP $vip: $(grep -i error "$log" | tail -n 5)"
    expect_no_vip dir1 "$vip"
done
fetch_dist 10 "http://203.0.113.10:8080/"
expect_no_errors

# The foreign rule goes: the service is ours at the next resync, then the VIP.
ipvs dir1 -D -t 203.0.113.20:8080 || fail "cannot delete the foreign rule"
sched_rules 203.0.113.10:8080 rr 80 rs1=1 rs2=1 >/tmp/want.vns
sched_rules 203.0.113.20:8080 rr 80 rs1=1 rs2=1 >>/tmp/want.vns
ipvs_expect dir1 30 </tmp/want.vns
wait_until 15 addr_held dir1 203.0.113.20 || true
expect_vip_on dir1 203.0.113.20
fetch_dist 10 "http://203.0.113.20:8080/"
expect_no_errors

# The good service is deleted by hand and cannot come back: VIP withdrawn.
manifest_sched_vs good 203.0.113.10 8080 twos
ipvs dir1 -D -t 203.0.113.10:8080 || fail "cannot delete the agent's rule by hand"
wait_until 30 addr_gone dir1 203.0.113.10 || true
expect_no_vip dir1 203.0.113.10
expect_vip_on dir1 203.0.113.20
sched_rules 203.0.113.20:8080 rr 80 rs1=1 rs2=1 | ipvs_expect dir1 5
agent_alive dir1 || fail "agent on dir1 died"
