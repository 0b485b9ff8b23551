# shellcheck shell=bash
# Director high availability (README "Director high availability"): two
# directors (dir1, dir2) with the agents' Lease election on, 10 DR VIPs
# (192.0.2.100-109:80) and a DR echo service on the first VIP (:9000), all
# served by rs1 and rs2, and a NAT echo service on the first VIP (:9001 to the
# realservers' :9000; the realservers' default gateway is dir1). The router
# shares the lan with the directors: its neighbour table and `arping -b` (every request broadcast, so every node that
# answers is seen) from it show which MAC answers for a VIP.
#
# Only labs whose nodes can lose their links, their API server path and their
# agent (lab_has ha: the joined lab) register these scenarios. They watch the
# nodes from the router's namespace with `ip -n NODE` (the nodes are network
# namespaces of one VM: one clock, /proc/uptime, for every timestamp).
#
#   HA_FAILOVER_MAX_S  bound of a takeover: kill/link loss -> router's entry on
#                      the standby and requests answered again (default 3)
#   HA_ARP_SECS        how long ha-single-arp-owner arpings each VIP (default 60)
#   HA_OUTAGE_SECS     API server outage of ha-api-outage-keeps-vips (default 60)
#   HA_PARTITION_SECS  how long the active stays cut off from the API server (default 20)
#   LVS_HA_SCENARIOS   0: leave them out (a quicker joined suite while working
#                      on something else); default 1, as in `make test`
if lab_has ha && [[ ${LVS_HA_SCENARIOS:-1} == 1 ]]; then
  scenario ha-single-arp-owner sc_ha_single_arp_owner
  scenario ha-failover-agent-kill sc_ha_failover_agent_kill
  scenario ha-failover-node-down sc_ha_failover_node_down
  scenario ha-stream-survives-failover sc_ha_stream_survives_failover
  scenario ha-api-outage-keeps-vips sc_ha_api_outage_keeps_vips
  scenario ha-api-partition-no-split-brain sc_ha_api_partition
fi

HA_VIPS=(192.0.2.100 192.0.2.101 192.0.2.102 192.0.2.103 192.0.2.104
  192.0.2.105 192.0.2.106 192.0.2.107 192.0.2.108 192.0.2.109)
HA_VIP=${HA_VIPS[0]}
HA_ECHO_PORT=9000
HA_NAT_PORT=9001
HA_MAX=${HA_FAILOVER_MAX_S:-3}

# _ha_manifest: the HA scenarios' objects: one VirtualService per VIP (rr,
# TCP, directors: director-group=edge) plus the stream services, and the
# RealServers app=ha-web (DR, by nodeName) and app=ha-nat (NAT, by address).
_ha_manifest() {
  local i edge=lvs.lvs-operator.io/director-group=edge
  for i in "${!HA_VIPS[@]}"; do sc_vs_yaml "ha-$i" "${HA_VIPS[$i]}" 80 DR ha-web "$edge"; done
  sc_vs_yaml ha-stream "$HA_VIP" "$HA_ECHO_PORT" DR ha-web "$edge"
  sc_vs_yaml ha-stream-nat "$HA_VIP" "$HA_NAT_PORT" NAT ha-nat "$edge"
  for i in rs1 rs2; do
    sc_rs_yaml "ha-$i" ha-web "{nodeName: $(lab_node "$i"), weight: 1}"
    sc_rs_yaml "ha-nat-$i" ha-nat "{address: $(lab_node_ip "$i"), port: $HA_ECHO_PORT, weight: 1}"
  done
}

# _ha_held NODE: the HA VIPs NODE holds, one a line, sorted.
_ha_held() {
  in_node "$1" ip -o -4 addr show | awk '{ split($4, p, "/"); if ($2 != "lo" && p[1] ~ /^192\.0\.2\.1[0-9][0-9]$/) print p[1] }' | LC_ALL=C sort -u
}
# _ha_holders VIP: the directors holding VIP (space separated, may be empty).
_ha_holders() {
  local d out=""
  for d in $(lab_directors); do
    _ha_held "$d" | grep -qxF "$1" && out+="$d "
  done
  echo "${out% }"
}
_ha_one_holder() { local h; h=$(_ha_holders "$1"); [[ -n $h && $h != *" "* ]]; }
_ha_other() { local d; for d in $(lab_directors); do [[ $d != "$1" ]] && echo "$d"; done; }
# _ha_all_one_holder: every HA VIP has exactly one holder.
_ha_all_one_holder() {
  local d1 d2 v
  d1=$(_ha_held dir1) d2=$(_ha_held dir2)
  for v in "${HA_VIPS[@]}"; do
    [[ $(printf '%s\n%s\n' "$d1" "$d2" | grep -cxF "$v") == 1 ]] || return 1
  done
}
# _ha_holder_map: "VIP=NODE ..." for every HA VIP.
_ha_holder_map() {
  local d1 d2 v out=""
  d1=$(_ha_held dir1) d2=$(_ha_held dir2)
  for v in "${HA_VIPS[@]}"; do
    out+="$v="
    grep -qxF "$v" <<<"$d1" && out+="dir1"
    grep -qxF "$v" <<<"$d2" && out+="+dir2"
    out+=" "
  done
  echo "${out% }" | sed 's/=+/=/g'
}
# _ha_neigh VIP: the MAC in the router's neighbour entry for VIP (empty: none).
_ha_neigh() { in_node router ip neigh show "$1" dev lan0 | sed -n 's/.* lladdr \([0-9a-f:]*\).*/\1/p'; }
# _ha_arp_macs VIP COUNT: the distinct MACs answering COUNT broadcast ARP
# requests for VIP from the router.
_ha_arp_macs() {
  in_node router arping -b -I lan0 -c "$2" -w "$(($2 + 1))" "$1" 2>&1 |
    sed -n 's/.*reply from .* \[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f' | sort -u | tr '\n' ' ' | sed 's/ $//'
}
_ha_uptime() { in_node router cut -d' ' -f1 /proc/uptime; }
# _ha_secs A B: B - A in seconds with two decimals (uptime values).
_ha_secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
_ha_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }

# _ha_heal: undo what an HA scenario may have left behind when it failed or
# was cut short (a held agent, links down, the API server path cut, monitors).
_ha_heal() {
  local d
  for d in $(lab_directors); do
    lab_agent_hold "$d" off
    lab_node_links "$d" up
    lab_node_api "$d" restore 2>/dev/null
  done
  in_node router sh -c 'touch /tmp/ha-mon.stop /tmp/ha-hold.stop'
  in_node client sh -c 'touch /tmp/ha-mon.stop /tmp/ha-dr.stop /tmp/ha-nat.stop /tmp/ha-nosync.stop'
  return 0
}

# _ha_setup: undo what an earlier HA scenario left (and again when this one
# ends), HA on for both directors, the objects applied (once: later HA
# scenarios reuse them), every VirtualService Ready, both directors with the
# IPVS services, every VIP held by exactly one director.
_ha_setup() {
  local i d
  _ha_heal
  trap _ha_heal EXIT
  if ! k get "$VS_GROUP" ha-stream -n default >/dev/null 2>&1; then
    sc_reset
    # shellcheck disable=SC2046
    k label node $(lab_directors) lvs.lvs-operator.io/director-group=edge --overwrite >/dev/null ||
      sc_fail "cannot label the directors"
  fi
  # shellcheck disable=SC2046
  lab_ha_on $(lab_directors) || sc_fail "the directors' agents do not serve GET /ha with HA on (logs: in-node.sh root cat /run/lab/logs/dir1.log)"
  _ha_manifest | k apply -f - >/dev/null || sc_fail "kubectl apply of the HA objects failed"
  for i in "${!HA_VIPS[@]}" stream stream-nat; do
    sc_wait_vs "ha-$i" 2 120
  done
  for d in $(lab_directors); do
    sc_retry 60 _ha_all_services "$d" || sc_fail "$d does not program all HA services (warm standby): $(sc_ipvs "$d" | grep -c '^-A') services"
  done
  sc_retry 60 _ha_all_one_holder || sc_fail "not every VIP has exactly one holder after 60 s: $(_ha_holder_map)"
  # A director that came back (an earlier scenario's restart or link loss)
  # gets its share back only after the preempt delay: wait for the spread,
  # so no handback moves a VIP while a scenario measures.
  sc_retry 60 _ha_spread_settled || sc_fail "the VIPs did not spread over both directors within 60 s: $(_ha_holder_map); still settling: $(_ha_settling)"
  sc_ok "holders: $(_ha_holder_map)"
}
# _ha_spread_settled: no director waits for another to settle (GET /ha
# `settling` empty everywhere: directors started together each hold what
# they took until the preempt delay has passed, then move VIPs to their
# preferred owners), every director active for its even share (5 of the 10
# VIPs), and the holders unchanged over a second.
_ha_spread_settled() {
  local d m
  for d in $(lab_directors); do
    [[ $(lab_ha_state "$d" | jq -r '.settling | length') == 0 ]] || return 1
    (($(_ha_held "$d" | grep -c .) >= ${#HA_VIPS[@]} / 2)) || return 1
  done
  m=$(_ha_holder_map)
  sleep 1
  [[ $(_ha_holder_map) == "$m" ]] && _ha_all_one_holder
}
# _ha_settling: "NODE: PEERS" for each director whose GET /ha lists peers
# still settling.
_ha_settling() {
  local d
  for d in $(lab_directors); do
    echo "$d: $(lab_ha_state "$d" | jq -r '.settling | join(",")');"
  done | tr '\n' ' '
}
_ha_all_services() {
  local n
  n=$(in_node "$1" ipvsadm -Sn | grep -c -e '^-A -t 192\.0\.2\.1[0-9][0-9]:')
  ((n == ${#HA_VIPS[@]} + 2))
}

# _ha_monitor_start VIP: in the VM, from now on: the router's neighbour entry
# for VIP on each change (/tmp/ha-neigh.log "UPTIME MAC"), and a request to
# http://VIP/ from the client every ~0.1 s with a 1 s limit
# (/tmp/ha-probe.log "UPTIME ok|ERR").
_ha_monitor_start() {
  in_node router sh -c '
    rm -f /tmp/ha-neigh.log /tmp/ha-mon.stop
    (
      last=
      while [ ! -e /tmp/ha-mon.stop ]; do
        m=$(ip neigh show "$1" dev lan0 | sed -n "s/.* lladdr \([0-9a-f:]*\).*/\1/p")
        [ "$m" != "$last" ] && echo "$(cut -d" " -f1 /proc/uptime) ${m:-none}" && last=$m
        sleep 0.05
      done >/tmp/ha-neigh.log
    ) </dev/null >/dev/null 2>&1 &' mon "$1" || sc_fail "cannot start the neighbour monitor"
  in_node client sh -c '
    rm -f /tmp/ha-probe.log /tmp/ha-mon.stop
    (
      while [ ! -e /tmp/ha-mon.stop ]; do
        t=$(cut -d" " -f1 /proc/uptime)
        if timeout 1 wget -q -O /dev/null "http://$1/" 2>/dev/null; then echo "$t ok"; else echo "$t ERR"; fi
        sleep 0.1
      done >/tmp/ha-probe.log
    ) </dev/null >/dev/null 2>&1 &' probe "$1" || sc_fail "cannot start the request probe"
  sc_retry 20 _ha_probe_oks 5 || sc_fail "requests to $1 do not succeed before the failover: $(in_node client tail -n 3 /tmp/ha-probe.log | tr '\n' ' ')"
}
_ha_probe_oks() { (($(in_node client grep -c ' ok$' /tmp/ha-probe.log) >= $1)); }
_ha_monitor_stop() {
  in_node router touch /tmp/ha-mon.stop
  in_node client touch /tmp/ha-mon.stop
}
# _ha_neigh_at MAC SINCE: the uptime at which the router's entry first showed
# MAC after SINCE (empty: not yet).
_ha_neigh_at() { in_node router cat /tmp/ha-neigh.log | awk -v m="$1" -v s="$2" '$1 > s && $2 == m { print $1; exit }'; }
_ha_neigh_is() { [[ -n $(_ha_neigh_at "$1" "$2") ]]; }
# _ha_restored_at SINCE: the uptime of the first answered request after the
# last failed one after SINCE (SINCE itself if none failed); empty while the
# last request after SINCE failed.
_ha_restored_at() {
  in_node client cat /tmp/ha-probe.log | awk -v s="$1" '
    $1 > s { if ($2 == "ERR") { err = 1; ok = "" } else if (ok == "") ok = $1 }
    END { if (!err) print s; else if (ok != "") print ok }'
}
_ha_restored() { local r; r=$(_ha_restored_at "$1"); [[ -n $r ]] && _ha_probe_after "$r"; }
_ha_probe_after() { in_node client awk -v s="$1" '$1 > s && $2 == "ok" { n++ } END { exit !(n >= 3) }' /tmp/ha-probe.log; }
_ha_failed_after() { in_node client awk -v s="$1" '$1 > s && $2 == "ERR" { n++ } END { print n + 0 }' /tmp/ha-probe.log; }
_ha_not_held_by() { ! _ha_held "$1" | grep -qxF "$2"; }
_ha_held_by() { _ha_held "$1" | grep -qxF "$2"; }

# _ha_takeover_checks A S MACA MACS T0 WHAT: after A failed at uptime T0: the
# router's entry moves to S's MAC, S holds the VIP, requests succeed again,
# all within the bound. Sets HA_SWITCH_S and HA_RESTORED_S.
_ha_takeover_checks() {
  local a=$1 s=$2 maca=$3 macs=$4 t0=$5 what=$6 t_sw t_ok
  sc_retry $((HA_MAX + 10)) _ha_neigh_is "$macs" "$t0" ||
    sc_fail "$what: the router's entry for $HA_VIP did not move to $s ($macs) within $((HA_MAX + 10)) s: $(in_node router cat /tmp/ha-neigh.log | tr '\n' ';'); holders: $(_ha_holders "$HA_VIP")"
  t_sw=$(_ha_neigh_at "$macs" "$t0")
  HA_SWITCH_S=$(_ha_secs "$t0" "$t_sw")
  sc_ok "$what: router's entry for $HA_VIP on $s after $HA_SWITCH_S s"
  sc_retry 10 _ha_held_by "$s" "$HA_VIP" || sc_fail "$what: $s does not hold $HA_VIP after the takeover"
  sc_retry $((HA_MAX + 10)) _ha_restored "$t0" ||
    sc_fail "$what: requests to $HA_VIP do not succeed again within $((HA_MAX + 10)) s: $(in_node client tail -n 5 /tmp/ha-probe.log | tr '\n' ';')"
  t_ok=$(_ha_restored_at "$t0")
  HA_RESTORED_S=$(_ha_secs "$t0" "$t_ok")
  sc_info "$what: router's entry on the standby after $HA_SWITCH_S s, requests answered again after $HA_RESTORED_S s ($(_ha_failed_after "$t0") failed requests of 1 s)"
  _ha_le "$HA_SWITCH_S" "$HA_MAX" || sc_fail "$what: takeover took $HA_SWITCH_S s, bound $HA_MAX s"
  # A probe request lasts up to 1 s (its limit) before it counts as failed.
  _ha_le "$HA_RESTORED_S" "$((HA_MAX + 1))" || sc_fail "$what: requests answered again only after $HA_RESTORED_S s, bound $HA_MAX s (+1 s probe limit)"
}

# _ha_single_owner_now VIP: one holder, and broadcast ARP sees only its MAC.
_ha_single_owner_now() {
  local h macs
  sc_retry 30 _ha_one_holder "$1" || sc_fail "$1 has holders '$(_ha_holders "$1")' 30 s later (expected one)"
  h=$(_ha_holders "$1")
  macs=$(_ha_arp_macs "$1" 3)
  expect_eq "MACs answering ARP for $1 (holder $h)" "$(lab_node_mac "$h")" "$macs"
}

sc_ha_single_arp_owner() {
  _ha_setup
  local d n v secs=${HA_ARP_SECS:-60} max=0 macs want d1 d2
  declare -A mac=() count=()
  for d in $(lab_directors); do mac[$d]=$(lab_node_mac "$d") count[$d]=0; done
  d1=$(_ha_held dir1) d2=$(_ha_held dir2)
  for v in "${HA_VIPS[@]}"; do
    grep -qxF "$v" <<<"$d1" && count[dir1]=$((count[dir1] + 1))
    grep -qxF "$v" <<<"$d2" && count[dir2]=$((count[dir2] + 1))
  done
  for d in $(lab_directors); do ((count[$d] > max)) && max=${count[$d]}; done
  sc_info "ha-single-arp-owner: ${#HA_VIPS[@]} VIPs active on dir1: ${count[dir1]}, dir2: ${count[dir2]}"
  ((max <= 6)) || sc_fail "spread ${count[dir1]}/${count[dir2]} (dir1/dir2), expected at most 6/4"
  # What each agent reports (GET /ha) agrees with the addresses.
  for d in $(lab_directors); do
    expect_eq "active VIPs in $d's GET /ha" "$(_ha_held "$d" | tr '\n' ' ')" \
      "$(lab_ha_state "$d" | jq -r '.active[]' | grep -E '^192\.0\.2\.1[0-9][0-9]$' | LC_ALL=C sort -u | tr '\n' ' ')"
  done
  # Every VIP arpinged in parallel for $secs s (a request a second, each
  # broadcast), while the client's requests make the router refresh its entries.
  sc_traffic_start ha-arp "http://$HA_VIP/"
  in_node router sh -c '
    secs=$1; shift
    for v in "$@"; do arping -b -I lan0 -c "$secs" -w "$((secs + 2))" "$v" >"/tmp/arp-$v.log" 2>&1 & done
    wait' arp "$secs" "${HA_VIPS[@]}"
  sc_traffic_clean ha-arp "while arpinging"
  for v in "${HA_VIPS[@]}"; do
    macs=$(in_node router cat "/tmp/arp-$v.log" | sed -n 's/.*reply from .* \[\([0-9a-fA-F:]*\)\].*/\1/p' | tr 'A-F' 'a-f' | sort | uniq -c | awk '{print $2 "x" $1}' | tr '\n' ' ')
    n=$(wc -w <<<"$macs")
    d=$(_ha_holders "$v")
    want=${mac[$d]:-?}
    [[ $n == 1 && $macs == "$want"x* ]] || sc_fail "$v: MACs answering ARP over $secs s: '$macs' (expected only $d's $want)"
    sc_ok "$v: only $d answers ARP ($macs)"
  done
  expect_eq "router's entry for $HA_VIP" "${mac[$(_ha_holders "$HA_VIP")]}" "$(_ha_neigh "$HA_VIP")"
}

sc_ha_failover_agent_kill() {
  _ha_setup
  local a s maca macs t0
  a=$(_ha_holders "$HA_VIP") s=$(_ha_other "$a")
  maca=$(lab_node_mac "$a") macs=$(lab_node_mac "$s")
  _ha_monitor_start "$HA_VIP"
  expect_eq "router's entry for $HA_VIP before the kill" "$maca" "$(_ha_neigh "$HA_VIP")"
  lab_agent_hold "$a" on
  t0=$(_ha_uptime)
  lab_agent_kill "$a" || sc_fail "kill -9 of the agent on $a failed"
  sc_ok "agent on $a (active for $HA_VIP) killed at uptime $t0, not restarted for now"
  _ha_takeover_checks "$a" "$s" "$maca" "$macs" "$t0" "ha-failover-agent-kill"
  # The killed agent renews nothing: the VIP's address lifetime runs out.
  sc_retry "$HA_MAX" _ha_not_held_by "$a" "$HA_VIP" || sc_fail "$a still holds $HA_VIP $HA_MAX s after its agent died"
  expect_eq "MACs answering ARP for $HA_VIP with $a's agent dead" "$macs" "$(_ha_arp_macs "$HA_VIP" 3)"
  _ha_monitor_stop
  local st
  st=$(lab_agent_starts "$a")
  lab_agent_hold "$a" off
  sc_retry 120 _sc_agent_restarted "$a" "$st" || sc_fail "the agent on $a did not come back within 120 s"
  sc_ok "agent on $a restarted"
  _ha_single_owner_now "$HA_VIP"
  sc_retry 60 _ha_all_one_holder || sc_fail "after the restart of $a's agent: $(_ha_holder_map)"
}

sc_ha_failover_node_down() {
  _ha_setup
  local a s maca macs t0 t1 d
  a=$(_ha_holders "$HA_VIP") s=$(_ha_other "$a")
  maca=$(lab_node_mac "$a") macs=$(lab_node_mac "$s")
  _ha_monitor_start "$HA_VIP"
  t0=$(_ha_uptime)
  lab_node_links "$a" down || sc_fail "cannot take $a's links down"
  sc_ok "$a's links down at uptime $t0"
  _ha_takeover_checks "$a" "$s" "$maca" "$macs" "$t0" "ha-failover-node-down"
  expect_eq "MACs answering ARP for $HA_VIP with $a off the lan" "$macs" "$(_ha_arp_macs "$HA_VIP" 3)"
  t1=$(_ha_uptime)
  lab_node_links "$a" up || sc_fail "cannot bring $a's links up"
  # Back on the lan, $a still holds the VIPs it had (it could not tell a
  # lost API server from a lost lan) until it sees the Leases again.
  sc_retry 60 _ha_all_one_holder || sc_fail "60 s after $a's links came back: $(_ha_holder_map)"
  d=$(_ha_secs "$t1" "$(_ha_uptime)")
  sc_info "ha-failover-node-down: $a's links back: one holder per VIP again after at most $d s"
  _ha_monitor_stop
  _ha_single_owner_now "$HA_VIP"
}

# A long-lived TCP stream through the DR VIP keeps flowing across a takeover
# (kill -9 of the active's agent) because the standby learned its connection
# from the active's sync daemon; a NAT stream on the same VIP is reported
# (INFO). Then the same takeover with the standby's backup sync daemon
# stopped: the DR stream must break, or the first part proved nothing.
sc_ha_stream_survives_failover() {
  _ha_setup
  local a s maca macs t0 n0 n1 nat0 nat1 nat_before nat_ended nat_result=broke d
  a=$(_ha_holders "$HA_VIP") s=$(_ha_other "$a")
  maca=$(lab_node_mac "$a") macs=$(lab_node_mac "$s")
  for d in "$a" "$s"; do
    _ha_daemon "$d" backup || sc_fail "$d runs no IPVS backup sync daemon: $(_ha_daemons "$d")"
    _ha_daemon "$d" master || sc_fail "$d runs no IPVS master sync daemon: $(_ha_daemons "$d")"
  done
  sc_ok "sync daemons on $a: $(_ha_daemons "$a")"
  _ha_stream_start dr "$HA_ECHO_PORT"
  _ha_stream_start nat "$HA_NAT_PORT"
  sc_retry 20 _ha_stream_lines dr 10 || sc_fail "the DR stream through $HA_VIP:$HA_ECHO_PORT does not flow: $(_ha_stream_tail dr)"
  # The standby learned the connection from the active's sync daemon.
  sc_retry 20 _ha_synced "$s" "$HA_ECHO_PORT" || sc_fail "$s has no synced connection to $HA_VIP:$HA_ECHO_PORT: $(in_node "$s" ipvsadm -Lnc | tr '\n' ';')"
  sc_ok "$s holds the DR stream's connection (synced): $(in_node "$s" ipvsadm -Lnc | grep " $HA_VIP:$HA_ECHO_PORT " | tr '\n' ';')"
  if sc_retry 5 _ha_stream_lines nat 10; then nat_before=flowing; else nat_before="not flowing: $(_ha_stream_tail nat)"; fi
  _ha_monitor_start "$HA_VIP"
  lab_agent_hold "$a" on
  t0=$(_ha_uptime)
  lab_agent_kill "$a" || sc_fail "kill -9 of the agent on $a failed"
  nat0=$(_ha_stream_count nat)
  _ha_takeover_checks "$a" "$s" "$maca" "$macs" "$t0" "ha-stream-survives-failover"
  sc_retry "$HA_MAX" _ha_not_held_by "$a" "$HA_VIP" || sc_fail "$a still holds $HA_VIP"
  n0=$(_ha_stream_count dr)
  sc_retry 15 _ha_stream_lines dr $((n0 + 10)) ||
    sc_fail "the DR stream stopped at the takeover: $n0 lines then $(_ha_stream_count dr) (nc ended: $(_ha_stream_ended dr && echo yes || echo no))"
  n1=$(_ha_stream_count dr)
  sc_ok "DR stream flows on through $s: $n0 -> $n1 lines"
  _ha_stream_ended dr && sc_fail "the DR stream's connection ended"
  sc_info "ha-stream-survives-failover: a DR stream kept flowing across the takeover from $a to $s ($n1 lines echoed)"
  nat1=$(_ha_stream_count nat)
  if _ha_stream_ended nat; then nat_ended=yes; else nat_ended=no; fi
  # A NAT reply goes back through the realservers' gateway (dir1), which
  # de-masquerades only connections it knows: the stream can only flow while
  # the gateway knows it.
  if [[ $nat_before != flowing ]]; then
    nat_result="never flowed before the takeover"
    ((nat1 >= nat0 + 10)) && nat_result+=", flowed after it"
  elif [[ $nat_ended == no ]] && ((nat1 >= nat0 + 10)); then
    nat_result=survived
  fi
  sc_info "ha-stream-survives-failover: NAT stream $HA_VIP:$HA_NAT_PORT (active $a -> $s; the realservers' gateway is dir1): $nat_result (before the takeover: $nat_before; $nat0 -> $nat1 lines after it; nc ended: $nat_ended)"
  in_node client touch /tmp/ha-dr.stop /tmp/ha-nat.stop
  _ha_monitor_stop
  local st
  st=$(lab_agent_starts "$a")
  lab_agent_hold "$a" off
  sc_retry 120 _sc_agent_restarted "$a" "$st" || sc_fail "the agent on $a did not come back within 120 s"
  sc_retry 60 _ha_all_one_holder || sc_fail "after the restart of $a's agent: $(_ha_holder_map)"
  _ha_stream_without_sync
}

# The control: the standby's backup sync daemon stopped by hand, and the
# active's master daemon once its agent is dead, so the standby never learns
# the stream's connection; after the takeover the new active has no entry for
# the stream's packets and its stack resets the connection. Then a full
# resync (SIGHUP) of the standby's agent starts its daemon again, and the
# restarted agent on the old active its master daemon.
_ha_stream_without_sync() {
  local a s maca macs t0 n0 n1 ended st known
  # The agent killed before is back: wait for its VIPs to move back to it
  # (after the preempt delay), so no handback moves the VIP while measuring.
  sc_retry 60 _ha_spread_settled || sc_fail "the VIPs did not spread over both directors again within 60 s: $(_ha_holder_map); still settling: $(_ha_settling)"
  a=$(_ha_holders "$HA_VIP") s=$(_ha_other "$a")
  maca=$(lab_node_mac "$a") macs=$(lab_node_mac "$s")
  # $s's agent starts its stopped daemon again at its next full resync:
  # one now (SIGHUP), so that the next periodic one is a resync interval
  # (30 s) away, beyond the few seconds until $a's master daemon stops too.
  n0=$(_ha_full_syncs "$s")
  lab_agent_resync "$s"
  sc_retry 20 _ha_full_synced "$s" "$n0" || sc_fail "$s's agent ran no full resync within 20 s of SIGHUP"
  in_node "$s" ipvsadm --stop-daemon backup || sc_fail "ipvsadm --stop-daemon backup failed on $s"
  known=$(_ha_conns "$s" "$HA_ECHO_PORT")
  _ha_stream_start nosync "$HA_ECHO_PORT"
  sc_retry 20 _ha_stream_lines nosync 10 || sc_fail "the control DR stream does not flow: $(_ha_stream_tail nosync)"
  _ha_monitor_start "$HA_VIP"
  lab_agent_hold "$a" on
  t0=$(_ha_uptime)
  lab_agent_kill "$a" || sc_fail "kill -9 of the agent on $a failed"
  # $s's own periodic resync may start its backup daemon again at any time
  # (it owns it); with $a's agent dead, stopping $a's master daemon too means
  # nothing can send $s the stream's connection from here on. Checked after
  # that: what $s knows now is all it will know.
  in_node "$a" ipvsadm --stop-daemon master || sc_fail "ipvsadm --stop-daemon master failed on $a"
  _ha_synced "$s" "$HA_ECHO_PORT" "$known" &&
    sc_fail "control: $s has the stream's connection although its backup sync daemon was stopped: $(in_node "$s" ipvsadm -Lnc | tr '\n' ';')"
  sc_ok "control: $s (backup sync daemon stopped, then $a's master daemon) does not know the stream's connection"
  _ha_takeover_checks "$a" "$s" "$maca" "$macs" "$t0" "ha-stream-survives-failover (control, no sync)"
  n0=$(_ha_stream_count nosync)
  # Broken: nc ended (reset), or nothing echoed for 5 s.
  sc_retry 10 _ha_stream_broken nosync
  n1=$(_ha_stream_count nosync)
  if _ha_stream_ended nosync; then ended=yes; else ended=no; fi
  sc_info "ha-stream-survives-failover: control without connection sync: the DR stream went $n0 -> $n1 lines after the takeover, nc ended: $ended"
  ((n1 >= n0 + 10)) && [[ $ended == no ]] &&
    sc_fail "control: the DR stream survived the takeover with connection sync stopped ($n0 -> $n1 lines): the scenario proves nothing about the sync daemon"
  sc_ok "control: without connection sync the DR stream broke at the takeover"
  in_node client touch /tmp/ha-nosync.stop
  _ha_monitor_stop
  # The agent owns its daemons: a full resync starts the stopped one again.
  lab_agent_resync "$s"
  sc_retry 20 _ha_daemon "$s" backup || sc_fail "$s's agent did not start its backup sync daemon again after a full resync: $(_ha_daemons "$s")"
  sc_ok "$s's agent started its backup sync daemon again: $(_ha_daemons "$s")"
  st=$(lab_agent_starts "$a")
  lab_agent_hold "$a" off
  sc_retry 120 _sc_agent_restarted "$a" "$st" || sc_fail "the agent on $a did not come back within 120 s"
  sc_retry 60 _ha_all_one_holder || sc_fail "after the restart of $a's agent: $(_ha_holder_map)"
  sc_retry 20 _ha_daemon "$a" master || sc_fail "the restarted agent on $a did not start its master sync daemon again: $(_ha_daemons "$a")"
  sc_ok "the restarted agent on $a started its master sync daemon again: $(_ha_daemons "$a")"
}
# _ha_full_syncs NODE: the full syncs NODE's agent has run.
_ha_full_syncs() {
  lab_agent_metrics "$1" | awk '/^lvs_agent_syncs_total\{mode="full"\}/ { print $2; found = 1 } END { if (!found) print 0 }'
}
# _ha_full_synced NODE N: NODE's agent has run more than N full syncs.
_ha_full_synced() { (($(_ha_full_syncs "$1") > $2)); }
# _ha_stream_start NAME PORT: a line every 0.2 s over one TCP connection from
# the client to HA_VIP:PORT (an echo service); /tmp/ha-NAME.out grows while
# it flows and /tmp/ha-NAME.done appears when nc ended.
_ha_stream_start() {
  in_node client sh -c '
    rm -f "/tmp/ha-$1.out" "/tmp/ha-$1.stop" "/tmp/ha-$1.done"
    (
      i=0
      while [ ! -e "/tmp/ha-$1.stop" ]; do echo "line $i"; i=$((i + 1)); sleep 0.2; done |
        nc "$2" "$3" >"/tmp/ha-$1.out" 2>&1
      touch "/tmp/ha-$1.done"
    ) </dev/null >/dev/null 2>&1 &' stream "$1" "$HA_VIP" "$2" || sc_fail "cannot start the $1 stream"
}
_ha_stream_count() { in_node client sh -c 'cat "/tmp/ha-$1.out" 2>/dev/null | grep -c "^line "' count "$1"; }
_ha_stream_lines() { (($(_ha_stream_count "$1") >= $2)); }
_ha_stream_ended() { in_node client test -e "/tmp/ha-$1.done"; }
_ha_stream_tail() { in_node client sh -c 'tail -n 3 "/tmp/ha-$1.out" 2>/dev/null' tail "$1" | tr '\n' ';'; }
# _ha_stream_broken NAME: nc ended, or the stream echoed nothing for 5 s.
_ha_stream_broken() {
  local n
  _ha_stream_ended "$1" && return 0
  n=$(_ha_stream_count "$1")
  sleep 5
  [[ $(_ha_stream_count "$1") == "$n" ]]
}
# _ha_conns NODE PORT: the clients (address:port) of NODE's ESTABLISHED IPVS
# connections to the VIP's PORT, one a line.
_ha_conns() { in_node "$1" ipvsadm -Lnc | awk -v v="$HA_VIP:$2" '$3 == "ESTABLISHED" && $5 == v { print $4 }'; }
# _ha_synced NODE PORT [KNOWN]: NODE has such a connection from a client not
# among KNOWN (an earlier _ha_conns: entries left by earlier streams, which
# a director that lost the VIP keeps until they time out).
_ha_synced() { _ha_conns "$1" "$2" | grep -qvxF -e "${3:-none}"; }
_ha_daemon() { in_node "$1" ipvsadm -L --daemon | grep -q "^$2 sync daemon"; }
_ha_daemons() { in_node "$1" ipvsadm -L --daemon | tr '\n' ';'; }

sc_ha_api_outage_keeps_vips() {
  lab_has apiserver-restart || sc_fail "this lab cannot stop its API server"
  _ha_setup
  local before secs=${HA_OUTAGE_SECS:-60} t_end v1 v2 now
  before=$(_ha_holder_map)
  v1=$(_ha_held dir1 | head -n 1) v2=$(_ha_held dir2 | head -n 1)
  [[ -n $v1 && -n $v2 ]] || sc_fail "expected each director active for a VIP: $before"
  sc_traffic_start ha-out1 "http://$v1/"
  sc_traffic_start ha-out2 "http://$v2/"
  lab_apiserver_stop || sc_fail "cannot stop the API server"
  sc_ok "API server stopped for $secs s; holders: $before"
  t_end=$((SECONDS + secs))
  while ((SECONDS < t_end)); do
    now=$(_ha_holder_map)
    [[ $now == "$before" ]] || { lab_apiserver_start; sc_fail "holders changed during the outage: $before -> $now"; }
  done
  lab_apiserver_start || sc_fail "cannot start the API server again"
  sc_retry 60 k get ns default >/dev/null || sc_fail "the API server does not answer after its restart"
  sc_wait_vs ha-0 2 120
  expect_eq "holders after the outage" "$before" "$(_ha_holder_map)"
  local t
  for t in ha-out1 ha-out2; do
    sc_traffic_clean "$t" "during the outage"
  done
}

sc_ha_api_partition() {
  _ha_setup
  local a s secs=${HA_PARTITION_SECS:-20} both
  a=$(_ha_holders "$HA_VIP") s=$(_ha_other "$a")
  sc_traffic_start ha-part "http://$HA_VIP/"
  # In the VM every ~0.1 s: does each director hold the VIP ("UPTIME 0|1 0|1").
  in_node router sh -c '
    rm -f /tmp/ha-hold.log /tmp/ha-hold.stop
    (
      while [ ! -e /tmp/ha-hold.stop ]; do
        h1=0; h2=0
        ip -n "$2" -o -4 addr show dev eth0 | grep -q " $1/" && h1=1
        ip -n "$3" -o -4 addr show dev eth0 | grep -q " $1/" && h2=1
        echo "$(cut -d" " -f1 /proc/uptime) $h1 $h2"
        sleep 0.1
      done >/tmp/ha-hold.log
    ) </dev/null >/dev/null 2>&1 &' hold "$HA_VIP" "$a" "$s" || sc_fail "cannot start the holder monitor"
  lab_node_api "$a" cut || sc_fail "cannot cut $a off the API server"
  sc_ok "$a (active for $HA_VIP) cut off the API server for $secs s"
  local t_end=$((SECONDS + secs)) macs
  while ((SECONDS < t_end)); do
    macs=$(_ha_arp_macs "$HA_VIP" 1)
    [[ $macs != *" "* ]] || echo "two MACs answered ARP for $HA_VIP: $macs"
  done
  lab_node_api "$a" restore || sc_fail "cannot give $a its API server back"
  sc_retry 60 _ha_one_holder "$HA_VIP" || true
  in_node router touch /tmp/ha-hold.stop
  # The longest run of samples where both held the VIP.
  both=$(in_node router cat /tmp/ha-hold.log | awk '
    $2 == 1 && $3 == 1 { if (start == "") start = $1; d = $1 - start; if (d > max) max = d; seen = 1; next }
    { start = "" }
    END { printf "%s %.2f %d\n", seen ? "yes" : "no", max + 0, NR }')
  # Enough samples to tell (the monitor ran the whole time).
  ((${both##* } >= secs)) || sc_fail "the holder monitor took only ${both##* } samples in $secs s"
  both=${both% *}
  sc_info "ha-api-partition-no-split-brain: both directors held $HA_VIP at once: $both s at most; holder at the end: $(_ha_holders "$HA_VIP")"
  [[ $both == no* ]] || _ha_le "${both#* }" 1 || sc_fail "$a and $s both held $HA_VIP for ${both#* } s (longer than the announcement)"
  sc_traffic_clean ha-part "while $a was cut off"
  _ha_single_owner_now "$HA_VIP"
}
