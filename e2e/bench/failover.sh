#!/usr/bin/env bash
# The failover part of `make bench`: director HA takeovers after the active
# agent is killed, in one joined lab.
#
#   failover.sh [--out DIR]
#
# Starts a joined lab with director HA on (e2e/joined/lab.sh up with
# LVS_JOINED_HA=1; agents on dir1, dir2 and the DR realservers rs1, rs2
# only), sets up the HA scenarios' objects with their own function
# (e2e/scenarios/90-ha.sh _ha_setup: 10 DR VIPs 192.0.2.100-109 over dir1
# and dir2, every VIP with one holder), notes the holders, then ROUNDS times:
#   1. picks the director to fail, dir1 and dir2 in turn, and one of the VIPs
#      it holds (the next one each time it is picked);
#   2. follows the router's neighbour entry for that VIP (`joinedbench neigh`
#      in the router: an rtnetlink dump every 20 ms, logged on each change as
#      "UPTIME MAC", the neighbour log 90-ha.sh's helpers read) and starts
#      `joinedbench requests` in the client: a GET of http://VIP/
#      every BENCH_FAILOVER_PROBE_MS on a new connection, each with a 0.9 s
#      connect limit (below TCP's 1 s SYN retransmission, so an answered
#      request means the path worked when it started), logged in start order
#      as "UPTIME ok|ERR" (the log 90-ha.sh's helpers read);
#   3. holds the agent down (lab_agent_hold) and kill -9s it, reading
#      /proc/uptime in the same command;
#   4. failover_s = kill -> the start of the first answered request after the
#      router's entry shows the standby's MAC (the first request through the
#      standby); arp_s = kill -> that entry; restored_s = kill -> the first
#      answered request after the last failed one (a failure after the
#      takeover shows there and in failed_after; failed_before counts the
#      failures before the kill: the noise floor, or takeovers nobody caused);
#   5. lets the agent restart and waits until it answers /readyz and every
#      VIP is back with its holder from before the first round (the preferred
#      owners of the even spread) and stays so for BENCH_FAILOVER_STABLE_S
#      (4 s, two lease durations), then notes the spread.
# Every timestamp is the VM's one clock (the nodes are network namespaces of
# one VM). The waits are on conditions, each with a limit; a takeover that
# does not happen within BENCH_FAILOVER_LIMIT_S or a lab that does not settle
# within BENCH_FAILOVER_SETTLE_S fails the part (the samples so far stay in
# the output). A slow takeover is a figure, no failure.
#
# Writes key=value lines to DIR/failover-raw.txt (report.py --extra):
#   metric=failover_sample round= killed= standby= vip= failover_s= arp_s=
#     restored_s= failed_before= failed= failed_after= settle_s= spread=MAX/MIN
#   metric=vips_spread vips= directors= max= min= when=setup|round
#   metric=failover_wall rounds= wall_s= lab_up_s= load_before= load_after=
# and the lab's logs and each round's request and neighbour logs to
# DIR/failover/.
#
# Environment: BENCH_FAILOVER_ROUNDS (10), BENCH_FAILOVER_PROBE_MS (100),
# BENCH_FAILOVER_LIMIT_S (30), BENCH_FAILOVER_SETTLE_S (120),
# BENCH_FAILOVER_STABLE_S (4),
# BENCH_FAILOVER_LAB_DIR (the lab's directory, default
# $LVS_CACHE/joined-lab/failover-PID), BENCH_CACHE (where joinedbench is
# built, default $LVS_CACHE/bench), NODE_AGENT_BIN / LVS_OPERATOR_BIN
# (default target/release/{node-agent,lvs-operator}), LVS_CACHE.
# Exit status non-zero, with the reason on stderr, when the lab does not come
# up or a step fails.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../joined/lib.sh
. "$HERE/../joined/lib.sh"

OUT="$LVS_REPO/target/bench"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
lvs_need_root
ROUNDS=${BENCH_FAILOVER_ROUNDS:-10}
PROBE_MS=${BENCH_FAILOVER_PROBE_MS:-100}
LIMIT_S=${BENCH_FAILOVER_LIMIT_S:-30}
SETTLE_S=${BENCH_FAILOVER_SETTLE_S:-120}
STABLE_S=${BENCH_FAILOVER_STABLE_S:-4}
. "$HERE/joined-common.sh"
bench_part failover
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
bench_joinedbench

# --- the lab ---------------------------------------------------------------------------
export LVS_JOINED_DIR="${BENCH_FAILOVER_LAB_DIR:-$LVS_CACHE/joined-lab/failover-$$}"
lab_up=0
trap 'bench_lab_finish failover.sh' EXIT

step "joined lab up with director HA (agents on dir1, dir2, rs1, rs2)"
# The other realservers' agents would only share the VM's two vCPUs with the
# directors: the HA objects select rs1 and rs2 alone.
bench_lab_up LVS_JOINED_HA=1 LVS_JOINED_AGENTS="dir1 dir2 rs1 rs2"

# The scenarios' lab API, helpers and HA functions, as run-one.sh loads them
# (no scenario is registered or run).
# shellcheck source=../joined/lab-api.sh
. "$LVS_REPO/e2e/joined/lab-api.sh"
# shellcheck source=../scenarios/lib.sh
. "$LVS_REPO/e2e/scenarios/lib.sh"
scenario() { :; }
for f in "$LVS_REPO"/e2e/scenarios/[0-9]*.sh; do
    # shellcheck source=/dev/null
    . "$f"
done

jl_exec root 'cat >/run/lab/joinedbench && chmod +x /run/lab/joinedbench' "$TOOL" ||
    fail "copying joinedbench into the VM failed"

step "HA objects (90-ha.sh _ha_setup): ${#HA_VIPS[@]} DR VIPs over $(lab_directors | wc -w) directors"
# A subshell: _ha_setup sets its own EXIT trap (it heals what a scenario
# left), and sc_fail ends the shell it runs in.
(_ha_setup) >"$WORK/setup.log" 2>&1 || { cat "$WORK/setup.log" >&2; fail "the HA setup failed (above)"; }
MAP0=$(_ha_holder_map)
step "holders: $MAP0"

# spread: "MAX MIN" of the VIPs each director holds.
spread() {
    local d n max=0 min=
    for d in $(lab_directors); do
        n=$(_ha_held "$d" | grep -c .)
        ((n > max)) && max=$n
        [[ -z $min ]] || ((n < min)) && min=$n
    done
    echo "$max $min"
}
# settled: every VIP has one holder, the one it had before the first round.
settled() { _ha_all_one_holder && [[ $(_ha_holder_map) == "$MAP0" ]]; }
# wait_settled: settled, and still so STABLE_S later at every check between
# (a handoff back and forth between the directors is no settled lab);
# SETTLE_S at most.
wait_settled() {
    local since="" deadline=$((SECONDS + SETTLE_S))
    while :; do
        if settled; then
            since=${since:-$SECONDS}
            ((SECONDS - since >= STABLE_S)) && return 0
        else
            since=""
        fi
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}
neigh_now() { [[ $(_ha_neigh "$1") == "$2" ]]; }
# probe_log_past T: the request log holds a request started after T (so
# every request started before T has its outcome in the log).
probe_log_past() { in_node client awk -v s="$1" '{ t = $1 } END { exit !(t > s) }' /tmp/ha-probe.log; }
# first_ok_from T: the start of the first answered request at or after T.
first_ok_from() { in_node client awk -v s="$1" '$1 >= s && $2 == "ok" { print $1; exit }' /tmp/ha-probe.log; }
# failed_between A B: failed requests started after A and before B.
failed_between() { in_node client awk -v a="$1" -v b="$2" '$1 > a && $1 < b && $2 == "ERR" { n++ } END { print n + 0 }' /tmp/ha-probe.log; }
# monitors_start VIP: the router's neighbour entry for VIP
# (/tmp/ha-neigh.log) and the client's requests to it (/tmp/ha-probe.log),
# both until /tmp/ha-mon.stop exists (_ha_monitor_stop). The nodes share the
# VM's /tmp.
monitors_start() {
    in_node router sh -c '
        rm -f /tmp/ha-mon.stop /tmp/ha-neigh.log && : >/tmp/ha-neigh.log
        /run/lab/joinedbench neigh -addr "$1" -dev lan0 -stop-file /tmp/ha-mon.stop \
            -out /tmp/ha-neigh.log </dev/null >/tmp/ha-neigh.err 2>&1 &
        echo $! >/tmp/ha-neigh.pid' neigh "$1" &&
    in_node client sh -c '
        rm -f /tmp/ha-probe.log && : >/tmp/ha-probe.log
        /run/lab/joinedbench requests -url "http://$1/" -every "$2" -stop-file /tmp/ha-mon.stop \
            -out /tmp/ha-probe.log </dev/null >/tmp/ha-requests.err 2>&1 &
        echo $! >/tmp/ha-requests.pid' probe "$1" "${PROBE_MS}ms"
}
monitors_gone() {
    in_node root sh -c '! kill -0 "$(cat /tmp/ha-requests.pid)" 2>/dev/null && ! kill -0 "$(cat /tmp/ha-neigh.pid)" 2>/dev/null'
}

read -r smax smin <<<"$(spread)"
result "metric=vips_spread contender=agent vips=${#HA_VIPS[@]} directors=$(lab_directors | wc -w) max=$smax min=$smin when=setup"

# --- the takeovers ----------------------------------------------------------------------
read -r -a DIRS <<<"$(lab_directors)"
for ((i = 0; i < ROUNDS; i++)); do
    a=${DIRS[i % ${#DIRS[@]}]}
    s=$(_ha_other "$a")
    mapfile -t held < <(_ha_held "$a")
    ((${#held[@]} > 0)) || fail "round $i: $a holds no VIP ($(_ha_holder_map))"
    vip=${held[(i / ${#DIRS[@]}) % ${#held[@]}]}
    maca=$(lab_node_mac "$a") macs=$(lab_node_mac "$s")
    [[ -n $maca && -n $macs ]] || fail "round $i: no MAC of $a or $s"

    monitors_start "$vip" || fail "round $i: cannot start joinedbench neigh in the router or requests in the client"
    sc_retry 20 _ha_probe_oks 5 ||
        fail "round $i: requests to $vip do not succeed before the kill: $(in_node client tail -n 3 /tmp/ha-probe.log | tr '\n' ' ') $(in_node client cat /tmp/ha-requests.err)"
    sc_retry 20 neigh_now "$vip" "$maca" ||
        fail "round $i: the router's entry for $vip is '$(_ha_neigh "$vip")', expected $a's $maca"

    lab_agent_hold "$a" on || fail "round $i: cannot hold $a's agent down"
    st=$(lab_agent_starts "$a")
    # The uptime is read in the command that kills: no command-channel round
    # trip between the timestamp and the kill.
    t0=$(jl_exec root "read -r u _ </proc/uptime && kill -9 \$(cat /run/lab/agents/$a.pid) && echo \$u") ||
        fail "round $i: kill -9 of the agent on $a failed"

    sc_retry "$LIMIT_S" _ha_neigh_is "$macs" "$t0" ||
        fail "round $i: the router's entry for $vip did not move to $s ($macs) within $LIMIT_S s: $(in_node router cat /tmp/ha-neigh.log | tr '\n' ';'); holders: $(_ha_holders "$vip")"
    t_sw=$(_ha_neigh_at "$macs" "$t0")
    sc_retry 10 _ha_held_by "$s" "$vip" || fail "round $i: $s does not hold $vip after the router moved to it"
    # Every request started up to 2 s after the switch has its outcome in
    # the log before the log is read for the restoration.
    sc_retry 15 probe_log_past "$(awk -v t="$t_sw" 'BEGIN { print t + 2 }')" ||
        fail "round $i: the request log stops at $(in_node client tail -n 1 /tmp/ha-probe.log)"
    sc_retry "$LIMIT_S" _ha_restored "$t0" ||
        fail "round $i: requests to $vip do not succeed again within $LIMIT_S s: $(in_node client tail -n 5 /tmp/ha-probe.log | tr '\n' ';')"
    t_ok=$(first_ok_from "$t_sw")
    [[ -n $t_ok ]] || fail "round $i: no answered request after the switch to $s"
    failover_s=$(_ha_secs "$t0" "$t_ok") arp_s=$(_ha_secs "$t0" "$t_sw")
    restored_s=$(_ha_secs "$t0" "$(_ha_restored_at "$t0")")
    failed=$(_ha_failed_after "$t0") failed_after=$(_ha_failed_after "$t_ok") failed_before=$(failed_between 0 "$t0")
    _ha_monitor_stop
    sc_retry 10 monitors_gone || fail "round $i: joinedbench requests or neigh did not stop"
    in_node client cat /tmp/ha-probe.log >"$WORK/round-$((i + 1))-requests.log"
    in_node router cat /tmp/ha-neigh.log >"$WORK/round-$((i + 1))-neigh.log"
    echo "kill $t0 $a; standby $s $macs" >>"$WORK/round-$((i + 1))-neigh.log"

    lab_agent_hold "$a" off
    t_rel=$(_ha_uptime)
    sc_retry "$SETTLE_S" _sc_agent_restarted "$a" "$st" || fail "round $i: the agent on $a did not come back within $SETTLE_S s"
    wait_settled ||
        fail "round $i: $SETTLE_S s after $a's agent was let restart, not settled for $STABLE_S s: $(_ha_holder_map) (before the first round: $MAP0)"
    settle_s=$(_ha_secs "$t_rel" "$(_ha_uptime)")
    read -r smax smin <<<"$(spread)"
    result "metric=failover_sample contender=agent round=$((i + 1)) killed=$a standby=$s vip=$vip failover_s=$failover_s arp_s=$arp_s restored_s=$restored_s failed_before=$failed_before failed=$failed failed_after=$failed_after settle_s=$settle_s spread=$smax/$smin"
    result "metric=vips_spread contender=agent vips=${#HA_VIPS[@]} directors=${#DIRS[@]} max=$smax min=$smin when=round"
done

summary() {
    sort -n | awk '{ x[NR] = $1 } END { if (NR) printf "median %.2f s, max %.2f s over %d", (NR % 2 ? x[(NR + 1) / 2] : (x[NR / 2] + x[NR / 2 + 1]) / 2), x[NR], NR }'
}
step "failover_s: $(sed -n 's/^metric=failover_sample .* failover_s=\([0-9.]*\) .*/\1/p' "$RAW" | summary); router's entry: $(sed -n 's/^metric=failover_sample .* arp_s=\([0-9.]*\) .*/\1/p' "$RAW" | summary)"
result "metric=failover_wall contender=agent rounds=$ROUNDS probe_ms=$PROBE_MS wall_s=$((SECONDS - t_start)) lab_up_s=$lab_up_s load_before=\"$load_before\" load_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\""
