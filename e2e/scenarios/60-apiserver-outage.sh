# shellcheck shell=bash
# The API server goes away for 30 s under steady traffic: no request fails and
# no agent restarts (the kernel keeps forwarding; the agents keep their last
# state and retry). Right after the API server is back, a change is made; it
# reaches the kernel and the status.
scenario apiserver-outage sc_apiserver_outage
sc_apiserver_outage() {
  lab_has apiserver-restart || sc_fail "the $(lab_name) lab cannot stop its API server"
  sc_reset
  local d n t0 down_s
  d=$(lab_node dir1)
  sc_up_nat
  declare -A starts=()
  for n in $(lab_node dir1) $(lab_node rs1); do starts[$n]=$(lab_agent_starts "$n"); done

  sc_traffic_start outage "$URL_NAT"
  sleep 2
  t0=$SECONDS
  lab_apiserver_stop || sc_fail "stopping the API server failed"
  k get "$VS_GROUP" -n default >/dev/null 2>&1 && sc_fail "the API server still answers after stop"
  sc_ok "API server stopped"
  sleep 30
  down_s=$((SECONDS - t0))
  lab_apiserver_start || { sc_traffic_stop outage; sc_fail "restarting the API server failed"; }
  sc_ok "API server back after ${down_s} s"
  k patch "$VS_GROUP" web-nat -n default --type merge -p '{"spec":{"scheduler":"wrr"}}' ||
    sc_fail "kubectl patch right after the restart failed"
  t0=$SECONDS
  rules_nat wrr | sc_wait_ipvs "$d" "$SVC_NAT" 150 || exit 1
  sc_ok "the change made after the restart is in the kernel after $((SECONDS - t0)) s"
  sc_info "API server outage: a change made right after the restart reached the kernel $((SECONDS - t0)) s later ($(lab_name) lab)"
  sc_wait_vs web-nat 3 90
  sleep 2
  sc_traffic_clean outage "during the outage" 100
  for n in "${!starts[@]}"; do
    expect_eq "agent starts on $n (no crash while the API server was away)" "${starts[$n]}" "$(lab_agent_starts "$n")"
  done
  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}
