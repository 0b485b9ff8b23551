# shellcheck shell=bash
# kill -9 of the agents on the director and on a DR realserver under steady
# traffic: no request fails; the restarted agents adopt what is there: the
# kernel tables and addresses stay as they were, the new agents write nothing
# to the kernel (lvs_agent_ops_total stays 0), and the service's counters are
# not reset (nothing was re-created).
scenario agent-kill sc_agent_kill
sc_agent_kill() {
  sc_reset
  local d r n nat_before lo_before conns_before
  d=$(lab_node dir1) r=$(lab_node rs1)
  sc_apply nat
  sc_apply dr
  rules_nat | sc_wait_ipvs "$d" "$SVC_NAT" 90 || exit 1
  rules_dr | sc_wait_ipvs "$d" "$SVC_DR" 30 || exit 1
  sc_wait_vs web-nat 3 60
  sc_wait_vs web-dr 2 60
  sc_retry 30 _sc_vip_on "$r" "$VIP_DR" lo || sc_fail "$r has no $VIP_DR on lo"
  nat_before=$(sc_ipvs "$d")
  lo_before=$(in_node "$r" ip -o addr show dev lo | awk '{print $4}')

  sc_traffic_start kill-nat "$URL_NAT"
  sc_traffic_start kill-dr "$URL_DR"
  sleep 2
  sc_wait_conns "$d" "$SVC_NAT" 5
  conns_before=$(sc_svc_stat "$d" "$SVC_NAT" conns)
  declare -A starts=()
  for n in "$d" "$r"; do
    starts[$n]=$(lab_agent_starts "$n")
    lab_agent_kill "$n" || sc_fail "kill -9 of the agent on $n failed"
    sc_ok "agent on $n killed (start #${starts[$n]})"
  done
  for n in "$d" "$r"; do
    sc_retry 120 _sc_agent_restarted "$n" "${starts[$n]}" ||
      sc_fail "the agent on $n was not restarted and ready within 120 s"
    sc_ok "agent on $n restarted (start #$(lab_agent_starts "$n")) and ready"
  done
  # A full resync after the start has read the kernel by now; give a
  # misbehaving agent a few seconds to show it.
  sleep 5
  local t
  for t in kill-nat kill-dr; do
    sc_traffic_clean "$t" "while the agents restarted"
  done
  expect_eq "IPVS table of $d after the restart" "$nat_before" "$(sc_ipvs "$d")"
  expect_eq "addresses on lo of $r after the restart" "$lo_before" "$(in_node "$r" ip -o addr show dev lo | awk '{print $4}')"
  for n in "$d" "$r"; do
    expect_eq "kernel writes by the restarted agent on $n (lvs_agent_ops_total)" 0 "$(sc_agent_ops "$n")"
  done
  local conns_after
  conns_after=$(sc_svc_stat "$d" "$SVC_NAT" conns)
  ((conns_after >= conns_before)) || sc_fail "Conns of $SVC_NAT went from $conns_before to $conns_after: re-created"
  sc_ok "Conns $conns_before -> $conns_after"
  sc_wait_vs web-nat 3 60
  sc_wait_vs web-dr 2 60
  sc_delete nat
  sc_delete dr
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
  sc_wait_ipvs "$d" "$SVC_DR" 60 </dev/null
}
_sc_agent_restarted() {
  local s
  s=$(lab_agent_starts "$1") || return 1
  [[ -n $s && $s != "$2" ]] && lab_agent_readyz "$1"
}
