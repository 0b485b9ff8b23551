# IPVS timeouts (ipvsadm --set) from an LvsNodeProfile, on a director with a
# UDP NAT service (lab-dns on rs1-rs3).
#  - dir1 starts with hand-set timeouts 800 100 200; the agent keeps them
#    while no profile selects dir1.
#  - A profile selecting dir1 sets tcp 600, tcpFin 30, udp 7: `ipvsadm -L
#    --timeout` shows them, /status names the profile, and a UDP flow's
#    connection entry starts at 7 s or less (not at 200) and is gone soon
#    after 7 s.
#  - A second profile also selecting dir1 is a conflict: neither applies
#    (800 100 200 again) and /status lists both; removing it brings back
#    600 30 7.
#  - The agent restarts with the profile applied, then the profile is
#    removed: the values found before the first write (800 100 200, kept in
#    the agent's ledger across the restart) are back, and a new flow's entry
#    starts near 200 s again.
# lab-timeout: 150
. /lab/scenario.sh
VIP=203.0.113.81
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
nsx dir1 ipvsadm --set 800 100 200 || fail "ipvsadm --set 800 100 200 was refused on dir1"
expect_ipvs_timeouts dir1 1 "800 100 200" "set by hand before the agent starts"

manifest_vs udp-nat "$VIP" 53 rr NAT UDP
for r in rs1 rs2 rs3; do
    manifest_rs "udp-nat-$r" udp-nat "{address: $(topo_ip4 "$r"), port: 53}"
    rs_dns_start "$r" "$(topo_ip4 "$r"):53"
done
# A profile for another node only.
manifest_profile other rs1 <<YAML
  ipvsTimeouts: {tcpSeconds: 11, tcpFinSeconds: 12, udpSeconds: 13}
YAML
agent_start dir1
ipvs_expect dir1 30 <<RULES
-A -u $VIP:53 -s rr
-a -u $VIP:53 -r 10.0.1.11:53 -m -w 1
-a -u $VIP:53 -r 10.0.1.12:53 -m -w 1
-a -u $VIP:53 -r 10.0.1.13:53 -m -w 1
RULES
expect_ipvs_timeouts dir1 1 "800 100 200" "no profile selects dir1: left as found"

manifest_profile edge dir1 <<YAML
  ipvsTimeouts: {tcpSeconds: 600, tcpFinSeconds: 30, udpSeconds: 7}
YAML
expect_ipvs_timeouts dir1 20 "600 30 7" "profile edge"
_profile_applied() { agent_status dir1 | grep -q '"profile":{"state":"applied","name":"edge"'; }
wait_until 10 _profile_applied || fail "/status on dir1 does not report profile edge as applied: $(agent_status dir1 | grep -o '"profile":.*' | head -c 300)"
echo "ok: /status on dir1 reports profile edge applied"

# Traffic: one flow; its entry starts at the profile's 7 s and expires.
_ans="$(nsx client lab-dns query "$VIP:53" 24001 1 0 2000 | awk '{print $2}')"
case "$_ans" in rs[1-3]) echo "ok: flow from port 24001 answered by $_ans" ;; *) fail "flow from port 24001 got '$_ans', expected an answer from rs1-rs3" ;; esac
_conn="$(udp_conn dir1 24001)"
[ -n "$_conn" ] || fail "no IPVS connection entry for the flow from port 24001: $(nsx dir1 ipvsadm -Lnc)"
_left="${_conn%% *}"
[ "$_left" -ge 1 ] && [ "$_left" -le 7 ] || fail "the flow's entry expires in $_left s, expected at most the profile's 7 s (the hand-set 200 s would show 3:xx)"
echo "ok: the flow's connection entry starts at $_left s (udpSeconds 7)"
wait_until 15 _udp_conn_gone dir1 24001 || fail "the flow's entry is still there 15 s later: $(udp_conn dir1 24001)"
echo "ok: the flow's connection entry expired within 15 s"

# Two profiles select dir1: neither applies.
manifest_profile edge-too dir1 <<YAML
  ipvsTimeouts: {udpSeconds: 9}
YAML
expect_ipvs_timeouts dir1 20 "800 100 200" "two profiles select dir1: conflict, values found restored"
_profile_conflict() { agent_status dir1 | grep -q '"profile":{"state":"conflict","names":\[ *"edge", *"edge-too" *\]'; }
wait_until 10 _profile_conflict || fail "/status on dir1 does not report the conflict: $(agent_status dir1 | grep -o '"profile":.*' | head -c 300)"
echo "ok: /status on dir1 reports the conflict between edge and edge-too"
manifest_remove profile-edge-too
expect_ipvs_timeouts dir1 20 "600 30 7" "conflict over: profile edge again"

# Restart with the profile applied; then remove it.
agent_stop dir1
expect_ipvs_timeouts dir1 1 "600 30 7" "a stopped agent leaves the kernel as it is"
agent_start dir1
wait_until 20 _profile_applied || fail "/status on dir1 does not report profile edge after the restart"
manifest_remove profile-edge
expect_ipvs_timeouts dir1 20 "800 100 200" "profile removed after a restart: the values found first, from the ledger"
_ans="$(nsx client lab-dns query "$VIP:53" 24002 1 0 2000 | awk '{print $2}')"
case "$_ans" in rs[1-3]) ;; *) fail "flow from port 24002 got '$_ans', expected an answer" ;; esac
_left="$(udp_conn dir1 24002 | cut -d' ' -f1)"
[ "${_left:-0}" -gt 150 ] && [ "$_left" -le 200 ] || fail "a new flow's entry expires in '${_left}' s, expected near the restored 200 s"
echo "ok: a new flow's connection entry starts at $_left s (udp 200 restored)"
agent_alive dir1 || fail "agent on dir1 died"
