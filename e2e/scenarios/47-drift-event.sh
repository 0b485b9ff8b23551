# shellcheck shell=bash
# A hand edit on a director's IPVS table (a weight changed with ipvsadm -e, a
# destination deleted with ipvsadm -d) is repaired by the agent's next full
# resync; the VirtualService gets one DriftRepaired Event naming both, the
# LvsNode reports the drift, and the agent's drift metric counts each kind.
scenario drift-event sc_drift_event

# The agents' resync interval in the labs (--resync-interval 30).
DRIFT_RESYNC=${SC_AGENT_RESYNC:-30}

# _dr_metric NODE KIND: lvs_agent_drift_repaired_total of web-nat for KIND.
_dr_metric() {
  lab_agent_metrics "$1" | awk -v k="kind=\"$2\"" '
    /^lvs_agent_drift_repaired_total[{]/ && index($0, "virtual_service=\"default/web-nat\"") && index($0, k) { s += $NF }
    END { print s + 0 }'
}
# _dr_described NEEDLE...: `kubectl describe` of web-nat shows a DriftRepaired
# Event whose text has every NEEDLE.
_dr_described() {
  local out n
  out=$(k describe "$VS_GROUP" web-nat -n default 2>/dev/null | sed -n '/^Events:/,$p' | grep DriftRepaired) || return 1
  for n in "$@"; do grep -qF -e "$n" <<<"$out" || return 1; done
  echo "$out"
}
# _dr_lvsnode_count NODE: the drift count dir1's LvsNode reports for web-nat.
_dr_lvsnode_count() {
  k get lvsnode "$1" -o json | jq -r '.status.services[]? | select(.name == "default/web-nat") | .drift.count // 0'
}
_dr_reported() { (($(_dr_lvsnode_count "$1") >= 2)); }

sc_drift_event() {
  sc_reset
  local d rs_w rs_d changed0 deleted0 t0 ev
  d=$(lab_node dir1)
  rs_w=${NAT_RS_ADDRS[0]}:80
  rs_d=${NAT_RS_ADDRS[1]}:80
  sc_up_nat
  changed0=$(_dr_metric "$d" destination_changed)
  deleted0=$(_dr_metric "$d" destination_deleted)

  # Edit right after a periodic resync, so the next one is a whole interval
  # away. (The gap after a slow full sync is longer, see
  # --resync-max-share: a start under load can stretch the first one.)
  local full0
  sc_after_full_sync "$d"
  full0=$(sc_agent_full_syncs "$d")

  # By hand, behind the agent's back.
  # shellcheck disable=SC2086
  in_node "$d" ipvsadm -e $SVC_NAT -r "$rs_w" -m -w 0 || sc_fail "ipvsadm -e on $d failed"
  # shellcheck disable=SC2086
  in_node "$d" ipvsadm -d $SVC_NAT -r "$rs_d" || sc_fail "ipvsadm -d on $d failed"
  t0=$SECONDS
  sc_ipvs "$d" "$SVC_NAT"
  grep -qF -e "-a $SVC_NAT -r $rs_w -m -w 0" <<<"$(sc_ipvs "$d" "$SVC_NAT")" ||
    sc_fail "the hand edit of $rs_w is not in $d's table"

  # Repaired within one resync (plus slack for the lab's slow VM).
  rules_nat | sc_wait_ipvs "$d" "$SVC_NAT" $((DRIFT_RESYNC + 20)) || exit 1
  sc_info "drift repaired $((SECONDS - t0)) s after the hand edit (resync interval ${DRIFT_RESYNC} s)"
  (($(sc_agent_full_syncs "$d") > full0)) || sc_fail "repaired, but not by a full resync (lvs_agent_syncs_total{mode=\"full\"} stayed at $full0)"

  # Reported by the agent, counted by kind.
  sc_retry 20 _dr_reported "$d" ||
    sc_fail "$d's LvsNode reports drift count $(_dr_lvsnode_count "$d") for default/web-nat, expected 2"
  sc_ok "LvsNode $d: $(k get lvsnode "$d" -o json | jq -c '.status.services[] | select(.name == "default/web-nat") | .drift')"
  local changed deleted
  changed=$(_dr_metric "$d" destination_changed)
  deleted=$(_dr_metric "$d" destination_deleted)
  ((changed == changed0 + 1 && deleted == deleted0 + 1)) ||
    sc_fail "lvs_agent_drift_repaired_total of default/web-nat: destination_changed $changed0 -> $changed, destination_deleted $deleted0 -> $deleted (expected +1 each)"
  sc_ok "metric: destination_changed $changed0 -> $changed, destination_deleted $deleted0 -> $deleted"

  # One Event on the VirtualService naming both, visible with kubectl describe.
  sc_retry 30 _dr_described "destination $rs_w" "weight 0 -> 1" "destination $rs_d" "re-added" >/dev/null ||
    sc_fail "kubectl describe virtualservice web-nat shows no DriftRepaired Event naming $rs_w (weight 0 -> 1) and $rs_d (re-added): $(k describe "$VS_GROUP" web-nat -n default 2>&1 | sed -n '/^Events:/,$p' | tr '\n' ';')"
  ev=$(_dr_described "destination $rs_w")
  sc_ok "kubectl describe: $ev"
  local n
  n=$(k get "$VS_GROUP" web-nat -n default -o json | jq '[.status.drift[]? | select(.node == "'"$d"'")] | length')
  expect_eq "status.drift entries of $d on web-nat" 1 "$n"

  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}
