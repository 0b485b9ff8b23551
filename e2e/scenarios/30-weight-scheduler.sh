# shellcheck shell=bash
# kubectl patch of a weight and of the scheduler on the NAT example: the
# kernel follows in place. The scheduler switch happens while a connection is
# held open half-way through its request; that flow completes afterwards, and
# the service's counters are not reset (the service was not re-created).
scenario weight-scheduler sc_weight_scheduler
sc_weight_scheduler() {
  sc_reset
  local d conns_before conns_after held
  d=$(lab_node dir1)
  sc_up_nat
  sc_fetch 12 "$URL_NAT"
  sc_expect_no_errors
  sc_wait_conns "$d" "$SVC_NAT" 12
  conns_before=$(sc_svc_stat "$d" "$SVC_NAT" conns)

  # A flow held open: half a request now, the rest after 15 s.
  in_node client sh -c '
    rm -f /tmp/held.out
    ( (printf "GET / HTTP/1.0\r\n"; sleep 15; printf "\r\n"; sleep 5) | nc "$1" "$2" >/tmp/held.out 2>&1; touch /tmp/held.done ) \
      </dev/null >/dev/null 2>&1 &' held "$VIP_NAT" 8080
  sc_retry 10 _sc_held_established "$d" || sc_fail "the held connection to $VIP_NAT:8080 is not established on $d"
  local t0=$SECONDS
  k patch "$VS_GROUP" web-nat -n default --type merge -p '{"spec":{"scheduler":"wrr"}}' ||
    sc_fail "kubectl patch of the scheduler failed"
  rules_nat wrr | sc_wait_ipvs "$d" "$SVC_NAT" 30 || exit 1
  in_node "$d" ipvsadm -Ln -t "$VIP_NAT:8080"
  held=$(in_node client sh -c 'test -e /tmp/held.done && echo done || echo open')
  [[ $held == open ]] || sc_fail "the held connection ended before the scheduler switch was in the kernel ($((SECONDS - t0)) s); cannot judge"
  sc_ok "scheduler wrr in the kernel $((SECONDS - t0)) s after the patch, held connection still open"
  conns_after=$(sc_svc_stat "$d" "$SVC_NAT" conns)
  ((conns_after >= conns_before)) || sc_fail "Conns of $SVC_NAT went from $conns_before to $conns_after: the service was re-created"
  sc_ok "Conns $conns_before -> $conns_after (not reset)"
  sc_retry 30 _sc_held_done || sc_fail "the held connection did not finish"
  held=$(in_node client cat /tmp/held.out)
  grep -q '^HTTP/1\.[01] 200' <<<"$held" || sc_fail "the held connection got no 200 after the switch: $(head -c 200 <<<"$held")"
  local body
  body=$(tail -n 1 <<<"$held")
  [[ $body == "$(lab_answer rs1)" || $body == "$(lab_answer rs2)" || $body == "$(lab_answer rs3)" ]] ||
    sc_fail "the held connection's body is '$body', not a realserver's name"
  sc_ok "the connection held across the switch completed: 200 from $body"

  # Weights 1:2:3 with wrr.
  k patch "$RS_GROUP" web-nat-2 -n default --type merge -p '{"spec":{"weight":2}}' || sc_fail "patch web-nat-2"
  k patch "$RS_GROUP" web-nat-3 -n default --type merge -p '{"spec":{"weight":3}}' || sc_fail "patch web-nat-3"
  rules_nat wrr 1 2 3 | sc_wait_ipvs "$d" "$SVC_NAT" 30 || exit 1
  sc_wait_vs web-nat 3 30
  sc_fetch 60 "$URL_NAT"
  sc_expect_dist rs1=10 rs2=20 rs3=30
  conns_after=$(sc_svc_stat "$d" "$SVC_NAT" conns)
  ((conns_after >= conns_before)) || sc_fail "Conns of $SVC_NAT went from $conns_before to $conns_after after the weight change"
  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}

# _sc_held_established DIRECTOR: the director's connection table has an
# ESTABLISHED entry for the NAT VIP.
_sc_held_established() {
  in_node "$1" ipvsadm -Lnc | grep -E "ESTABLISHED.* $VIP_NAT:8080 " >/dev/null
}
_sc_held_done() { in_node client test -e /tmp/held.done; }
