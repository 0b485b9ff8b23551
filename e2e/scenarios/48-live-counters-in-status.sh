# shellcheck shell=bash
# The client makes N connections through the NAT VIP; within the counters
# refresh bound (--status-counters-interval, 10 s by default, plus the
# kernel estimator's lag and slack) dir1's LvsNode and the VirtualService's
# status show at least N connections and nonzero packets and bytes. At rest
# the LvsNode is written at most once per interval.
scenario live-counters-in-status sc_live_counters_in_status

# The agents' --status-counters-interval (the default).
LC_INTERVAL=${SC_AGENT_COUNTERS_INTERVAL:-10}

# _lc_node_counters NODE: web-nat's counters in NODE's LvsNode (compact JSON).
_lc_node_counters() {
  k get lvsnode "$1" -o json | jq -c '.status.services[]? | select(.name == "default/web-nat") | .counters // empty'
}
_lc_vs_traffic() { k get "$VS_GROUP" web-nat -n default -o json | jq -c '.status.traffic // empty'; }
# _lc_enough JSON N: connections >= N and packets and bytes in both directions > 0.
_lc_enough() {
  jq -e --argjson n "$2" '.connections >= $n and .inPackets > 0 and .outPackets > 0 and .inBytes > 0 and .outBytes > 0' <<<"$1" >/dev/null 2>&1
}
_lc_node_ok() { _lc_enough "$(_lc_node_counters "$1")" "$2"; }
_lc_vs_ok() { _lc_enough "$(_lc_vs_traffic | jq -c '.total')" "$1"; }

sc_live_counters_in_status() {
  sc_reset
  local d n=20 t0 bound took
  d=$(lab_node dir1)
  sc_up_nat
  sc_fetch "$n" "$URL_NAT"
  sc_expect_no_errors
  t0=$SECONDS
  # The agent reads every interval, and a write that differs only in
  # counters waits an interval after the last write (the status written when
  # the service was programmed, just before): at worst two intervals, plus
  # IPVS's 2 s publishing lag and slack for the lab's slow VM. The
  # VirtualService follows with one reconcile.
  bound=$((LC_INTERVAL * 2 + 2 + 6))
  sc_retry "$bound" _lc_node_ok "$d" "$n" ||
    sc_fail "LvsNode $d: web-nat counters $(_lc_node_counters "$d") within $bound s, expected connections >= $n and nonzero packets and bytes"
  took=$((SECONDS - t0))
  sc_ok "LvsNode $d after $took s: $(_lc_node_counters "$d")"
  sc_retry $((bound + 10 - took)) _lc_vs_ok "$n" ||
    sc_fail "VirtualService web-nat status.traffic $(_lc_vs_traffic) within $((bound + 10)) s, expected total connections >= $n and nonzero packets and bytes"
  sc_info "counters of $n connections in the LvsNode after $took s, in the VirtualService after $((SECONDS - t0)) s (bound $bound s)"
  local t
  t=$(_lc_vs_traffic)
  sc_ok "VirtualService web-nat status.traffic: $t"
  jq -e --arg d "$d" '.directors | map(.node) | index($d) != null' <<<"$t" >/dev/null ||
    sc_fail "status.traffic.directors does not list $d: $t"
  local hash
  hash=$(k get lvsnode "$d" -o json | jq -r '.status.services[]? | select(.name == "default/web-nat") | .tableHash // empty')
  [[ $hash =~ ^[0-9a-f]{16}$ ]] || sc_fail "LvsNode $d: tableHash of web-nat is '$hash', expected 16 hex digits"
  sc_ok "tableHash $hash"

  # Bounded writes at rest: watch the LvsNode for three intervals (failing
  # as soon as it is written too often). The rates decay after the traffic,
  # so counters still change, but each write that differs only in them
  # waits for the interval.
  local window=$((LC_INTERVAL * 3)) max watch_log pid end
  max=$((window / LC_INTERVAL + 1))
  watch_log=$(mktemp)
  lab_kubectl get lvsnode "$d" --watch -o jsonpath='{.metadata.resourceVersion}{"\n"}' >"$watch_log" 2>/dev/null &
  pid=$!
  end=$((SECONDS + window))
  while ((SECONDS < end)) && (($(_lc_changes "$watch_log") <= max)); do sleep 1; done
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  echo "resourceVersions of LvsNode $d over $window s: $(tr '\n' ' ' <"$watch_log")"
  local changes
  changes=$(_lc_changes "$watch_log")
  rm -f "$watch_log"
  ((changes <= max)) ||
    sc_fail "LvsNode $d was written $changes times in $window s at rest, expected at most $max (one per ${LC_INTERVAL} s)"
  sc_ok "LvsNode $d written $changes times in $window s at rest (at most $max)"

  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}

# _lc_changes FILE: the writes a watch log of resourceVersions shows (its
# first line is the object as it was).
_lc_changes() {
  local n
  n=$(sort -u "$1" | grep -c .)
  echo $((n > 0 ? n - 1 : 0))
}
