# shellcheck shell=bash
# kubectl lvs, as a user bound only to the chart's plugin ClusterRole, reads
# the directors' kernels through LvsSnapshot requests:
# - plugin-get: after client traffic through the NAT VIP, `kubectl lvs get
#   -o json` has, per destination on dir1, exactly the counters and weight of
#   `ipvsadm -Ln --stats --exact` there (read before and after the plugin,
#   equal both times), and the table form lists every destination.
# - plugin-diff: a hand edit on dir1 (a weight changed with ipvsadm -e, a
#   foreign service added with ipvsadm -A) shows in `kubectl lvs diff dir1`
#   (exit status 1) and `kubectl lvs table dir1` (owner foreign), and the
#   diff changes nothing: the kernel keeps the hand edit.
if lab_has plugin; then
  scenario plugin-get sc_plugin_get
  scenario plugin-diff sc_plugin_diff
fi

# _pl_ipvs_dests NODE SERVICE: "ADDR:PORT WEIGHT CONNS INPKTS OUTPKTS INBYTES
# OUTBYTES" per destination of SERVICE ("-t VIP:PORT") in NODE's kernel, sorted.
_pl_ipvs_dests() {
  local stats weights
  # shellcheck disable=SC2086
  stats=$(in_node "$1" ipvsadm -Ln --stats --exact $2) || return 1
  # shellcheck disable=SC2086
  weights=$(in_node "$1" ipvsadm -Ln $2) || return 1
  LC_ALL=C join <(awk '$1 == "->" && $2 != "RemoteAddress:Port" { print $2, $4 }' <<<"$weights" | LC_ALL=C sort) \
    <(awk '$1 == "->" && $2 != "RemoteAddress:Port" { print $2, $3, $4, $5, $6, $7 }' <<<"$stats" | LC_ALL=C sort)
}
# _pl_get_dests JSON NODE: the same lines from `kubectl lvs get -o json` for
# the director NODE.
_pl_get_dests() {
  jq -r --arg n "$2" '.virtualServices[0].directors[] | select(.node == $n) | .destinations[]
    | "\(.destination) \(.weight) \(.counters.connections) \(.counters.inPackets) \(.counters.outPackets) \(.counters.inBytes) \(.counters.outBytes)"' <<<"$1" |
    LC_ALL=C sort
}

sc_plugin_get() {
  sc_reset
  local d n=30 i before json after plugin table rc
  d=$(lab_node dir1)
  sc_up_nat
  sc_fetch "$n" "$URL_NAT"
  sc_expect_no_errors
  # IPVS publishes counters about every 2 s: wait for all of them.
  sc_wait_conns "$d" "$SVC_NAT" "$n"

  # A stable read: the kernel's numbers are the same before and after the
  # plugin's (the traffic has stopped), so the plugin's must equal them.
  for ((i = 1; i <= 10; i++)); do
    before=$(_pl_ipvs_dests "$d" "$SVC_NAT")
    json=$(lab_plugin get default/web-nat -o json) || sc_fail "kubectl lvs get default/web-nat -o json failed: $json"
    after=$(_pl_ipvs_dests "$d" "$SVC_NAT")
    [[ $before == "$after" && -n $before ]] && break
    echo "counters moved during read $i; again"
  done
  [[ $before == "$after" ]] || sc_fail "the counters of $SVC_NAT on $d did not settle in 10 reads: $(tr '\n' ';' <<<"$after")"
  echo "kubectl lvs get default/web-nat -o json:"
  echo "$json"
  plugin=$(_pl_get_dests "$json" "$d")
  echo "ipvsadm on $d (destination weight conns inpkts outpkts inbytes outbytes):"
  echo "$after"
  [[ $(wc -l <<<"$after") -eq ${#NAT_RS_ADDRS[@]} ]] || sc_fail "$d has $(wc -l <<<"$after") destinations of $SVC_NAT, expected ${#NAT_RS_ADDRS[@]}"
  [[ $plugin == "$after" ]] ||
    sc_fail "kubectl lvs get on $d: $(tr '\n' ';' <<<"$plugin") differs from ipvsadm -Ln --stats --exact: $(tr '\n' ';' <<<"$after")"
  sc_ok "kubectl lvs get equals ipvsadm -Ln --stats --exact on $d"
  local sum
  sum=$(awk '{ c += $3 } END { print c + 0 }' <<<"$plugin")
  ((sum >= n)) || sc_fail "the destinations' connections sum to $sum, expected at least $n"
  while read -r line; do sc_info "plugin-get $d: destination weight conns inpkts outpkts inbytes outbytes = $line"; done <<<"$plugin"
  expect_eq "role of $d (HA off)" null "$(jq -r --arg n "$d" '.virtualServices[0].directors[] | select(.node == $n) | .role' <<<"$json")"
  expect_eq "generation programmed on $d" "$(sc_vs_field web-nat '{.metadata.generation}')" \
    "$(jq -r --arg n "$d" '.virtualServices[0].directors[] | select(.node == $n) | .generation' <<<"$json")"

  table=$(lab_plugin get default/web-nat) || sc_fail "kubectl lvs get default/web-nat failed: $table"
  echo "$table"
  local a
  for a in "${NAT_RS_ADDRS[@]}"; do
    grep -qE "(^|[[:space:]])$a:80[[:space:]]+1[[:space:]]+Healthy[[:space:]]" <<<"$table" ||
      sc_fail "kubectl lvs get (table) does not list $a:80 with weight 1, Healthy: $(tr '\n' ';' <<<"$table")"
  done
  sc_ok "the table lists every destination"
  rc=0
  lab_plugin get default/no-such-service >/dev/null 2>&1 || rc=$?
  expect_eq "exit status of kubectl lvs get for a missing VirtualService" 1 "$rc"

  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}

# The foreign service plugin-diff adds by hand.
PL_FOREIGN="-t 203.0.113.99:80"

_pl_cleanup() {
  # shellcheck disable=SC2086
  in_node "$(lab_node dir1)" ipvsadm -D $PL_FOREIGN >/dev/null 2>&1 || true
}

# _pl_diff_round NODE: hand edit, diff, table, kernel check. Status 0: all
# checked; 3: a full resync ran in between (it may have repaired the edit),
# try again; anything else ends the scenario through sc_fail.
_pl_diff_round() {
  local d=$1 rs=${NAT_RS_ADDRS[0]}:80 full0 out rc table
  sc_after_full_sync "$d"
  full0=$(sc_agent_full_syncs "$d")
  # shellcheck disable=SC2086
  in_node "$d" ipvsadm -e $SVC_NAT -r "$rs" -m -w 3 || sc_fail "ipvsadm -e on $d failed"
  _pl_cleanup
  # shellcheck disable=SC2086
  in_node "$d" ipvsadm -A $PL_FOREIGN -s wlc || sc_fail "ipvsadm -A $PL_FOREIGN on $d failed"

  rc=0
  out=$(lab_plugin diff "$d" 2>&1) || rc=$?
  echo "kubectl lvs diff $d (exit $rc):"
  echo "$out"
  table=$(lab_plugin table "$d" 2>&1) || sc_fail "kubectl lvs table $d failed: $table"
  echo "kubectl lvs table $d:"
  echo "$table"
  local kernel
  kernel=$(sc_ipvs "$d" "$SVC_NAT")
  if (($(sc_agent_full_syncs "$d") != full0)); then
    echo "a full resync ran on $d during the round; again"
    return 3
  fi
  expect_eq "exit status of kubectl lvs diff $d" 1 "$rc"
  grep -F -e "$rs" <<<"$out" | grep -qF -e "weight 3 -> 1" ||
    sc_fail "kubectl lvs diff $d does not list the weight change of $rs (3 -> 1): $(tr '\n' ';' <<<"$out")"
  sc_ok "kubectl lvs diff lists: $(grep -F -e "$rs" <<<"$out" | sed 's/^ *//')"
  grep -qE "^TCP 203\.0\.113\.99:80[[:space:]]+foreign[[:space:]]" <<<"$table" ||
    sc_fail "kubectl lvs table $d does not mark TCP 203.0.113.99:80 foreign: $(tr '\n' ';' <<<"$table")"
  grep -qE "^TCP $VIP_NAT:8080[[:space:]]+default/web-nat[[:space:]]" <<<"$table" ||
    sc_fail "kubectl lvs table $d does not show TCP $VIP_NAT:8080 owned by default/web-nat: $(tr '\n' ';' <<<"$table")"
  sc_ok "kubectl lvs table $d: the foreign service is marked foreign, web-nat's is owned"
  grep -qF -e "-a $SVC_NAT -r $rs -m -w 3" <<<"$kernel" ||
    sc_fail "after kubectl lvs diff, $d's kernel no longer has the hand-edited weight 3 of $rs: $(tr '\n' ';' <<<"$kernel")"
  in_node "$d" ipvsadm -Sn | grep -qF -e "-A $PL_FOREIGN" ||
    sc_fail "after kubectl lvs diff, the foreign service $PL_FOREIGN is gone from $d"
  sc_ok "nothing changed: $d still has weight 3 for $rs and the foreign service"
  sc_info "plugin-diff: $(grep -F -e "$rs" <<<"$out" | sed 's/^ *//')"
}

sc_plugin_diff() {
  sc_reset
  local d rc=0
  d=$(lab_node dir1)
  trap _pl_cleanup EXIT
  sc_up_nat
  _pl_diff_round "$d" || rc=$?
  if ((rc == 3)); then
    rc=0
    _pl_diff_round "$d" || rc=$?
  fi
  ((rc == 0)) || sc_fail "a full resync on $d ran during both rounds, so the hand edit may have been repaired by it"

  # The agent repairs the weight at its next resync; the foreign service
  # is ours to remove.
  _pl_cleanup
  rules_nat | sc_wait_ipvs "$d" "$SVC_NAT" 60 || exit 1
  rc=0
  lab_plugin diff "$d" >/dev/null 2>&1 || rc=$?
  expect_eq "exit status of kubectl lvs diff $d once repaired" 0 "$rc"
  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}
