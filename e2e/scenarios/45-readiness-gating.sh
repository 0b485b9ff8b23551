# shellcheck shell=bash
# Realserver readiness gating: a DR realserver node whose agent has not set
# the VIP up gets weight 0 on the director (packets sent to it would be
# dropped), so it is added under steady traffic without a failed request;
# once its agent runs and reports the service, it gets its weight and
# answers.
scenario rs-readiness-gating sc_rs_readiness_gating

RG_NODE=rs3
RG_RS=web-dr-rs3

# _rg_rs WEIGHT: the RealServer that adds node rs3 to examples/dr.yaml.
_rg_rs() {
  cat <<EOF
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: $RG_RS
  namespace: default
  labels:
    app: web-dr
spec:
  nodeName: $(lab_node "$RG_NODE")
  weight: $1
EOF
}

# _rg_heal: whatever happened, rs3's agent runs again afterwards.
_rg_heal() { lab_agent_hold "$(lab_node "$RG_NODE")" off; }

_rg_agent_down() { ! lab_agent_readyz "$1"; }

# _rg_entry DIRECTOR VS RS FIELD: FIELD of the destination entry about
# RealServer RS (namespace/name) in DIRECTOR's LvsNode report of VS.
_rg_entry() {
  k get lvsnode "$1" -o json | jq -r --arg vs "$2" --arg rs "$3" --arg f "$4" \
    '.status.services[]? | select(.name == $vs) | .destinations[]? | select(.realServer == $rs) | .[$f] // empty'
}

# _rg_state DIRECTOR STATE: rs3's entry in the director's LvsNode has this
# state ("" for none). The status is published after the kernel is written,
# so it is waited for, not read once.
_rg_state() { [[ $(_rg_entry "$1" default/web-dr "default/$RG_RS" state) == "$2" ]]; }
_rg_expect_state() {
  sc_retry 30 _rg_state "$2" "$3" \
    || sc_fail "$1: expected '$3' within 30 s, got '$(_rg_entry "$2" default/web-dr "default/$RG_RS" state)'"
  sc_ok "$1 = '$3'"
}

sc_rs_readiness_gating() {
  sc_reset
  trap _rg_heal EXIT
  local d r ip st
  d=$(lab_node dir1) r=$(lab_node "$RG_NODE")
  ip=$(lab_node_ip "$r")
  # rs3's agent stops and stays down, as in a crash loop's back-off.
  st=$(lab_agent_starts "$r")
  lab_agent_hold "$r" on
  lab_agent_kill "$r" || sc_fail "kill -9 of the agent on $r failed"
  sc_retry 30 _rg_agent_down "$r" || sc_fail "the agent on $r still answers after kill -9"
  sc_ok "agent on $r down and held (start #$st)"

  sc_apply dr
  rules_dr | sc_wait_ipvs "$d" "$SVC_DR" 90 || exit 1
  sc_wait_vs web-dr 2 60
  sc_traffic_start gating "$URL_DR"
  sc_retry 10 _sc_conns_reached "$d" "$SVC_DR" 5 || sc_fail "no traffic through $SVC_DR"

  _rg_rs 2 | k apply -f - || sc_fail "creating RealServer $RG_RS failed"
  { rules_dr; echo "-a $SVC_DR -r $ip:80 -g -w 0"; } | sc_wait_ipvs "$d" "$SVC_DR" 60 || exit 1
  sc_ok "$r is a destination of $SVC_DR on $d at weight 0 while its agent is down"
  _rg_expect_state "state of $RG_RS in $d's LvsNode" "$d" Unready
  sc_ok "why: $(_rg_entry "$d" default/web-dr "default/$RG_RS" lastError)"
  expect_eq "VIP $VIP_DR on $r's lo (its agent is down)" "" "$(sc_addr_dev "$r" "$VIP_DR")"
  sc_fetch 30 "$URL_DR"
  sc_expect_no_errors
  expect_eq "requests answered by $RG_NODE while its agent is down ($FETCH_SUMMARY)" 0 "$(sc_got "$RG_NODE")"

  lab_agent_hold "$r" off
  sc_retry 120 _sc_agent_restarted "$r" "$st" || sc_fail "the agent on $r did not come back within 120 s"
  sc_ok "agent on $r restarted (start #$(lab_agent_starts "$r"))"
  { rules_dr; echo "-a $SVC_DR -r $ip:80 -g -w 2"; } | sc_wait_ipvs "$d" "$SVC_DR" 60 || exit 1
  sc_retry 30 _sc_vip_on "$r" "$VIP_DR" lo || sc_fail "$r does not hold $VIP_DR on lo"
  _rg_expect_state "entry of $RG_RS in $d's LvsNode once ready" "$d" ""
  sc_wait_vs web-dr 3 60
  sc_fetch 50 "$URL_DR"
  sc_expect_no_errors
  (($(sc_got "$RG_NODE") > 0)) || sc_fail "$RG_NODE answered no request once its agent runs ($FETCH_SUMMARY)"
  sc_ok "$RG_NODE answers once ready ($FETCH_SUMMARY)"
  sc_traffic_clean gating "while $RG_NODE was added with its agent down, then started"

  k delete "$RS_GROUP" "$RG_RS" -n default --wait=true --timeout=60s >/dev/null || sc_fail "deleting RealServer $RG_RS failed"
  sc_delete dr
  sc_wait_ipvs "$d" "$SVC_DR" 60 </dev/null
}
