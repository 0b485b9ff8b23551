# Director sysctls from an LvsNodeProfile, set and restored, with one
# behavioural proof (expire_nodest_conn) on a UDP NAT service (lab-dns on
# rs1, rs2; drain timeout 0, so a removed RealServer's destination is
# deleted at once).
#  - Agent defaults on a NAT director: expire_nodest_conn=1,
#    expire_quiescent_template=1, conntrack=1; conn_reuse_mode (set to 2 by
#    hand first), sloppy_tcp and schedule_icmp are left as found.
#  - A profile selecting dir1 sets every one to the other value.
#  - expire_nodest_conn=0: once the RealServer that answered a flow is
#    removed, the flow's next datagram is dropped and its entry stays.
#  - The profile is removed: every sysctl is back (the agent's defaults, or
#    the value found), and with expire_nodest_conn=1 the same flow's next
#    datagram is answered by the remaining realserver.
# lab-timeout: 150
. /lab/scenario.sh
VIP=203.0.113.82
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
nsx dir1 ipvsadm -Ln >/dev/null || fail "IPVS is not available on dir1"
echo 2 | nsx dir1 tee /proc/sys/net/ipv4/vs/conn_reuse_mode >/dev/null || fail "cannot set conn_reuse_mode on dir1"
expect_vs_sysctls dir1 1 "kernel defaults, conn_reuse_mode by hand" conn_reuse_mode=2 expire_nodest_conn=0 \
    expire_quiescent_template=0 sloppy_tcp=0 schedule_icmp=0 conntrack=0

manifest_vs udp-nat "$VIP" 53 rr NAT UDP "drain: {timeoutSeconds: 0}"
for r in rs1 rs2; do
    manifest_rs "udp-nat-$r" udp-nat "{address: $(topo_ip4 "$r"), port: 53}"
    rs_dns_start "$r" "$(topo_ip4 "$r"):53"
done
agent_start dir1
ipvs_expect dir1 30 <<RULES
-A -u $VIP:53 -s rr
-a -u $VIP:53 -r 10.0.1.11:53 -m -w 1
-a -u $VIP:53 -r 10.0.1.12:53 -m -w 1
RULES
DEFAULTS="conn_reuse_mode=2 expire_nodest_conn=1 expire_quiescent_template=1 sloppy_tcp=0 schedule_icmp=0 conntrack=1"
# shellcheck disable=SC2086
expect_vs_sysctls dir1 10 "agent defaults for a NAT director" $DEFAULTS

manifest_profile tuned dir1 <<YAML
  directorSysctls:
    connReuseMode: 0
    expireNodestConn: false
    expireQuiescentTemplate: false
    sloppyTcp: true
    scheduleIcmp: true
    conntrack: false
YAML
expect_vs_sysctls dir1 20 "profile tuned" conn_reuse_mode=0 expire_nodest_conn=0 \
    expire_quiescent_template=0 sloppy_tcp=1 schedule_icmp=1 conntrack=0

# expire_nodest_conn=0: the flow of a removed realserver is black-holed.
_first="$(nsx client lab-dns query "$VIP:53" 25001 1 0 2000 | awk '{print $2}')"
case "$_first" in rs1) _other=rs2 ;; rs2) _other=rs1 ;; *) fail "flow from port 25001 got '$_first', expected rs1 or rs2" ;; esac
echo "ok: flow from port 25001 answered by $_first"
manifest_remove "udp-nat-$_first"
ipvs_expect dir1 30 <<RULES
-A -u $VIP:53 -s rr
-a -u $VIP:53 -r $(topo_ip4 "$_other"):53 -m -w 1
RULES
_ans="$(nsx client lab-dns query "$VIP:53" 25001 1 0 1500 | awk '{print $2}')"
expect_eq "answer to the flow's next datagram once $_first is removed (expire_nodest_conn=0)" ERR "$_ans"
_conn="$(udp_conn dir1 25001)"
expect_eq "destination of the flow's entry (kept with expire_nodest_conn=0)" "$(topo_ip4 "$_first"):53" "${_conn#* }"

# The profile goes: every sysctl back.
manifest_remove profile-tuned
# shellcheck disable=SC2086
expect_vs_sysctls dir1 20 "profile removed: agent defaults and the value found" $DEFAULTS
_ans="$(nsx client lab-dns query "$VIP:53" 25001 1 0 2000 | awk '{print $2}')"
expect_eq "answer to the same flow's next datagram (expire_nodest_conn=1)" "$_other" "$_ans"
_conn="$(udp_conn dir1 25001)"
expect_eq "destination of the flow's entry now" "$(topo_ip4 "$_other"):53" "${_conn#* }"
agent_alive dir1 || fail "agent on dir1 died"
