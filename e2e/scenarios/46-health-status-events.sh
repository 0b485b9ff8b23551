# shellcheck shell=bash
# Health through kubectl: examples/nat.yaml with a TCP health check (every
# 2 s, fall 2, rise 1) on a check port each realserver listens on. When
# rs2's check listener stops, the director inhibits it (weight 0) and
# everything a user looks at says so: the VirtualService's Degraded
# condition and healthy count (`kubectl get lvsvs`), the director's LvsNode
# entry, the RealServer's health, and the Events Degraded (VirtualService)
# and Unhealthy (RealServer). When it listens again: weight back, Degraded
# False, the entry gone, RealServer Healthy, Events Recovered and Healthy.
scenario health-status-events sc_health_status_events

HS_PORT=9100

# _hs_listen NODE: a TCP listener on HS_PORT in NODE (accepts and closes).
_hs_listen() {
  in_node "$1" sh -c '
    [ -e "/tmp/hs-$1.pid" ] && kill "$(cat "/tmp/hs-$1.pid")" 2>/dev/null
    nc -ll -p "$2" -e /bin/true </dev/null >/dev/null 2>&1 &
    echo $! >"/tmp/hs-$1.pid"' listen "$1" "$HS_PORT" || sc_fail "cannot start the check listener on $1"
}
# _hs_unlisten NODE: stop it.
_hs_unlisten() {
  in_node "$1" sh -c '[ -e "/tmp/hs-$1.pid" ] && kill "$(cat "/tmp/hs-$1.pid")"; rm -f "/tmp/hs-$1.pid"' unlisten "$1"
}
_hs_heal() {
  local n
  for n in rs1 rs2 rs3; do _hs_unlisten "$(lab_node "$n")" 2>/dev/null; done
}

# _hs_field KIND NAME JSONPATH
_hs_field() { k get "$1" "$2" -n default -o "jsonpath=$3" 2>/dev/null; }
# _hs_degraded: "STATUS|REASON|MESSAGE" of web-nat's Degraded condition.
_hs_degraded() {
  k get "$VS_GROUP" web-nat -n default -o json 2>/dev/null |
    jq -r '.status.conditions[]? | select(.type == "Degraded") | "\(.status)|\(.reason)|\(.message)"'
}
# _hs_entry FIELD: FIELD of dir1's LvsNode entry about RealServer web-nat-2.
_hs_entry() {
  k get lvsnode "$(lab_node dir1)" -o json | jq -r --arg f "$1" \
    '.status.services[]? | select(.name == "default/web-nat") | .destinations[]? | select(.realServer == "default/web-nat-2") | .[$f] // empty'
}
# _hs_event KIND NAME REASON SINCE: an Event of REASON about KIND/NAME seen
# at or after SINCE (RFC 3339); prints its note.
_hs_event() {
  k get events.events.k8s.io -n default -o json | jq -e -r --arg k "$1" --arg n "$2" --arg r "$3" --arg t "$4" '
    [.items[] | select(.regarding.kind == $k and .regarding.name == $n and .reason == $r)
      | select(((.series.lastObservedTime // .eventTime // .metadata.creationTimestamp) | sub("\\.[0-9]+"; "")) >= $t)]
    | if length > 0 then .[0].note else error("none") end'
}
_hs_wait() {
  local what=$1 secs=$2
  shift 2
  sc_retry "$secs" "$@" || sc_fail "$what not seen within $secs s"
  sc_ok "$what"
}
_hs_is_degraded() { [[ $(_hs_degraded) == "True|RealServersUnhealthy|2/3 realservers healthy on $(lab_node dir1)"* ]]; }
_hs_is_healthy() { [[ $(_hs_degraded) == "False|Healthy|all 3 realservers healthy"* ]]; }
_hs_eq() { [[ $("${@:2}") == "$1" ]]; }

sc_health_status_events() {
  sc_reset
  trap _hs_heal EXIT
  local d r n t0 t1
  d=$(lab_node dir1) r=$(lab_node rs2)
  for n in rs1 rs2 rs3; do _hs_listen "$(lab_node "$n")"; done
  sc_apply nat
  k patch "$VS_GROUP" web-nat -n default --type merge -p "{\"spec\":{\"healthCheck\":{\"type\":\"TCP\",\"port\":$HS_PORT,\"intervalSeconds\":2,\"timeoutSeconds\":1,\"fall\":2,\"rise\":1}}}" ||
    sc_fail "adding the health check to web-nat failed"
  rules_nat | sc_wait_ipvs "$d" "$SVC_NAT" 90 || exit 1
  sc_wait_vs web-nat 3 60
  _hs_wait "web-nat Degraded=False, all 3 healthy" 30 _hs_is_healthy
  expect_eq "web-nat healthy/total" 3/3 "$(_hs_field "$VS_GROUP" web-nat '{.status.realServers.healthSummary}')"

  t0=$(date -u +%FT%TZ)
  _hs_unlisten "$r"
  sc_ok "check listener on $r stopped at $t0"
  rules_nat rr 1 0 1 | sc_wait_ipvs "$d" "$SVC_NAT" 30 || exit 1
  _hs_wait "web-nat Degraded=True" 30 _hs_is_degraded
  sc_ok "Degraded: $(_hs_degraded)"
  k get "$VS_GROUP" web-nat -n default
  expect_eq "web-nat healthy/total" 2/3 "$(_hs_field "$VS_GROUP" web-nat '{.status.realServers.healthSummary}')"
  expect_eq "HEALTHY column of kubectl get lvsvs" 2/3 \
    "$(k get "$VS_GROUP" web-nat -n default --no-headers -o custom-columns=H:.status.realServers.healthSummary)"
  expect_eq "state of web-nat-2 in $d's LvsNode" Failing "$(_hs_entry state)"
  [[ -n $(_hs_entry lastError) ]] || sc_fail "no lastError for web-nat-2 in $d's LvsNode"
  sc_ok "lastError: $(_hs_entry lastError); since $(_hs_entry since)"
  _hs_wait "RealServer web-nat-2 health Failing" 30 _hs_eq Failing _hs_field "$RS_GROUP" web-nat-2 '{.status.healthSummary}'
  k get "$RS_GROUP" -n default
  expect_eq "web-nat-2's health entry" "default/web-nat Failing $d" \
    "$(_hs_field "$RS_GROUP" web-nat-2 '{.status.health[0].virtualService} {.status.health[0].state} {.status.health[0].directors[0]}')"
  expect_eq "RealServer web-nat-1 health" Healthy "$(_hs_field "$RS_GROUP" web-nat-1 '{.status.healthSummary}')"
  _hs_wait "Event Degraded on web-nat" 30 _hs_event VirtualService web-nat Degraded "$t0"
  _hs_wait "Event Unhealthy on web-nat-2" 30 _hs_event RealServer web-nat-2 Unhealthy "$t0"

  t1=$(date -u +%FT%TZ)
  _hs_listen "$r"
  sc_ok "check listener on $r back at $t1"
  rules_nat | sc_wait_ipvs "$d" "$SVC_NAT" 30 || exit 1
  _hs_wait "web-nat Degraded=False again" 30 _hs_is_healthy
  expect_eq "web-nat healthy/total" 3/3 "$(_hs_field "$VS_GROUP" web-nat '{.status.realServers.healthSummary}')"
  _hs_wait "no entry for web-nat-2 in $d's LvsNode" 30 _hs_eq "" _hs_entry state
  _hs_wait "RealServer web-nat-2 health Healthy" 30 _hs_eq Healthy _hs_field "$RS_GROUP" web-nat-2 '{.status.healthSummary}'
  _hs_wait "Event Recovered on web-nat" 30 _hs_event VirtualService web-nat Recovered "$t1"
  _hs_wait "Event Healthy on web-nat-2" 30 _hs_event RealServer web-nat-2 Healthy "$t1"
  sc_fetch 30 "$URL_NAT"
  sc_expect_dist rs1=10 rs2=10 rs3=10

  sc_delete nat
  sc_wait_ipvs "$d" "$SVC_NAT" 60 </dev/null
}
