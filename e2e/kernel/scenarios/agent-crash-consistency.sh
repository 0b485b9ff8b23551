# The ledger survives kill -9 at any moment. A director converges about 2,100
# IPVS rules (300 NAT services on 10 VIPs, 6 destinations each) while the
# manifests change between rounds (weights, a scheduler, a RealServer, a whole
# VIP's services); in each of at least 20 rounds the agent is killed with
# SIGKILL at a random moment (during its first full sync, a scoped sync and
# its journal append, or idle) and started again; every third kill also
# leaves a torn record at the end of the journal, as a kill during an append
# or a full disk does, and the next change appends after it. After the last restart and
# a full sync: the table is exactly the desired rules plus the foreign ones
# planted before (nothing owned leaked, nothing foreign touched), the VIPs on
# the director are exactly the desired ones, the agent reports no error (no
# own rule taken for foreign), and the ledger loaded (nothing quarantined).
# lab-timeout: 600
. /lab/scenario.sh
ROUNDS="${LAB_CRASH_ROUNDS:-20}"
SEED="${LAB_CRASH_SEED:-$(date +%s)}"
echo "seed $SEED (LAB_CRASH_SEED), $ROUNDS rounds"
NVIP=10 NPORT=30
STATE=/run/lab/state/dir1
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"

# rand N: the next number in 0..N-1 of the seeded sequence (its position
# is kept in a file: rand runs in command substitutions, i.e. subshells).
RAND_AT=/tmp/crash-rand.at
echo 0 >"$RAND_AT"
rand() {
    _i=$(( $(cat "$RAND_AT") + 1 )); echo "$_i" >"$RAND_AT"
    awk -v s="$SEED" -v i="$_i" -v n="$1" 'BEGIN { srand(s * 1000 + i); print int(rand() * n) }'
}

# The desired state, as shell variables: VIP k (203.0.113.10k) on or off and
# its scheduler; group a (even VIPs) and b (odd) each select six RealServers
# (rs1-rs3, two ports each) with weights; a seventh, a-extra, comes and goes.
vip() { echo "203.0.113.$((100 + $1))"; }
k=0; while [ "$k" -lt "$NVIP" ]; do eval "ON_$k=1 SCHED_$k=rr"; k=$((k + 1)); done
for g in a b; do for i in 1 2 3 4 5 6; do eval "W_${g}_$i=1"; done; done
EXTRA=0
rs_addr() { echo "10.0.1.1$(( ($1 - 1) % 3 + 1 ))"; }
rs_port() { case "$1" in a) echo $((80 + ($2 - 1) / 3)) ;; b) echo $((82 + ($2 - 1) / 3)) ;; esac; }

write_vip() { # k: the VIP's VirtualServices in one file (or none when off)
    eval "_on=\$ON_$1 _s=\$SCHED_$1"
    [ "$_on" = 1 ] || { manifest_remove "vip-$1"; return; }
    _g=a; [ $(($1 % 2)) -eq 1 ] && _g=b
    awk -v k="$1" -v vip="$(vip "$1")" -v n="$NPORT" -v s="$_s" -v g="$_g" 'BEGIN {
        for (p = 0; p < n; p++) {
            printf "---\napiVersion: lvs.lvs-operator.io/v1alpha1\nkind: VirtualService\n"
            printf "metadata:\n  name: vs-%d-%d\n  namespace: default\n", k, p
            printf "spec:\n  address: %s\n  port: %d\n  scheduler: %s\n  forwarding: NAT\n", vip, 10000 + p, s
            printf "  directors:\n    nodeSelector:\n      matchLabels:\n        lvs.lvs-operator.io/director: \"true\"\n"
            printf "  realServerSelector:\n    matchLabels:\n      app: %s\n", g
        }
    }' | manifest_write "vip-$1"
}
write_rs() { # group index [address port]: one RealServer
    eval "_w=\$W_$1_$2"
    manifest_write "rs-$1-$2" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: rs-$1-$2
  namespace: default
  labels:
    app: $1
spec:
  address: ${3:-$(rs_addr "$2")}
  port: ${4:-$(rs_port "$1" "$2")}
  weight: $_w
YAML
}
W_a_extra=4
write_extra() { if [ "$EXTRA" = 1 ]; then write_rs a extra 10.0.1.11 84; else manifest_remove rs-a-extra; fi; }

desired() { # the owned rules, as `ipvsadm -Sn` lines
    k=0
    while [ "$k" -lt "$NVIP" ]; do
        eval "_on=\$ON_$k _s=\$SCHED_$k"
        if [ "$_on" = 1 ]; then
            _g=a; [ $((k % 2)) -eq 1 ] && _g=b
            _dests=""
            for i in 1 2 3 4 5 6; do eval "_w=\$W_${_g}_$i"; _dests="$_dests $(rs_addr "$i"):$(rs_port "$_g" "$i")=$_w"; done
            [ "$_g" = a ] && [ "$EXTRA" = 1 ] && _dests="$_dests 10.0.1.11:84=$W_a_extra"
            awk -v vip="$(vip "$k")" -v n="$NPORT" -v s="$_s" -v d="$_dests" 'BEGIN {
                m = split(d, ds, " ")
                for (p = 0; p < n; p++) {
                    svc = vip ":" (10000 + p)
                    print "-A -t " svc " -s " s
                    for (j = 1; j <= m; j++) { split(ds[j], dw, "="); print "-a -t " svc " -r " dw[1] " -m -w " dw[2] }
                }
            }'
        fi
        k=$((k + 1))
    done
}
desired_vips() { k=0; while [ "$k" -lt "$NVIP" ]; do eval "_on=\$ON_$k"; [ "$_on" = 1 ] && vip "$k"; k=$((k + 1)); done; }

# change [KIND]: one change to the manifests, of a random kind unless given
# (1 and 3 change what the agent owns, so their sync appends to the journal).
change() {
    case "${1:-$(rand 4)}" in
        0) _g=a; [ "$(rand 2)" = 1 ] && _g=b; _i=$(( $(rand 6) + 1 ))
           eval "W_${_g}_$_i=$(( $(rand 5) + 1 ))"; write_rs "$_g" "$_i"
           echo "change: weight of rs-$_g-$_i" ;;
        1) _k=$(( $(rand $((NVIP - 1))) + 1 ))    # VIP 0 stays: it holds a foreign destination
           eval "ON_$_k=\$(( 1 - ON_$_k ))"; write_vip "$_k"
           echo "change: VIP $(vip "$_k") on=$(eval "echo \$ON_$_k")" ;;
        2) _k=$(rand "$NVIP"); eval "_s=\$SCHED_$_k"
           if [ "$_s" = rr ]; then eval "SCHED_$_k=wrr"; else eval "SCHED_$_k=rr"; fi
           write_vip "$_k"; echo "change: scheduler of VIP $(vip "$_k")" ;;
        3) EXTRA=$((1 - EXTRA)); write_extra; echo "change: rs-a-extra present=$EXTRA" ;;
    esac
}

# Foreign rules, planted before the agent ever runs: a service on another VIP,
# a fwmark service, and a UDP service on one of the agent's VIP addresses.
ipvs dir1 -A -t 203.0.113.99:80 -s rr && ipvs dir1 -a -t 203.0.113.99:80 -r 10.0.1.11:80 -m \
    && ipvs dir1 -A -f 77 -s wrr && ipvs dir1 -a -f 77 -r 10.0.1.12:80 -g -w 2 \
    && ipvs dir1 -A -u "$(vip 0):53" -s rr || fail "cannot plant the foreign rules"
FOREIGN="$(ipvs_rules dir1)"

k=0; while [ "$k" -lt "$NVIP" ]; do write_vip "$k"; k=$((k + 1)); done
for g in a b; do for i in 1 2 3 4 5 6; do write_rs "$g" "$i"; done; done
agent_start dir1
{ echo "$FOREIGN"; desired; } | ipvs_expect dir1 120
# A foreign destination inside an owned service (VIP 0 is never removed).
ipvs dir1 -a -t "$(vip 0):10000" -r 10.0.1.13:9000 -m -w 3 || fail "cannot plant the foreign destination"
FOREIGN="$FOREIGN
-a -t $(vip 0):10000 -r 10.0.1.13:9000 -m -w 3"
echo "ok: $(desired | wc -l) owned rules programmed, $(echo "$FOREIGN" | wc -l) foreign ones planted"

LOG="$(_agent_logs)/dir1.log"
# synced_since_start: the running agent finished a sync after its start.
synced_since_start() { awk '/^=== agent start/ { n = 0 } /sync done/ { n++ } END { exit !(n > 0) }' "$LOG"; }
# ledger_usable: no start of the agent so far found the ledger unusable (it
# would have moved it aside and taken its own rules for foreign).
ledger_usable() {
    _u="$(grep -m1 'ledger unusable' "$LOG")"
    [ -z "$_u" ] || fail "round $r: a restarted agent found the ledger unusable, moved it aside and now takes its own rules for foreign: $(echo "${_u#*error=}" | cut -c1-300)"
}
converged() {
    ledger_usable
    { echo "$FOREIGN"; desired; } | ipvs_expect_quiet dir1 90 || echo "round $r: not converged"
    wait_until 60 synced_since_start || echo "round $r: no sync since the start"
}

# Rounds go in threes:
#  r%3=2: from a converged table, no change; kill -9, and before the restart
#         a crash's torn record is left at the end of the journal (what a kill
#         during an append or a full disk leaves); the restarted agent's first
#         full sync then has nothing to change, so nothing rewrites the ledger;
#  r%3=0: once that sync is done, a change of what the agent owns: a scoped
#         sync appends to the journal (after the torn record, unless the load
#         cut it off), killed within 1.5 s, during that sync or after;
#  r%3=1: a random change, killed within 9 s: while the restarted agent loads
#         the ledger and manifests, in its first full sync, or in a scoped one.
r=1 TORN=0
while [ "$r" -le "$ROUNDS" ]; do
    case $((r % 3)) in
        2) converged; delay_ms=$(rand 1000) ;;
        0) converged; change "$(( $(rand 2) * 2 + 1 ))"; delay_ms=$(rand 1500) ;;
        1) change; [ "$(rand 3)" = 0 ] && change; delay_ms=$(rand 9000) ;;
    esac
    sleep "$((delay_ms / 1000)).$(printf %03d $((delay_ms % 1000)))"
    ledger_usable
    agent_alive dir1 || fail "round $r: the agent died by itself: $(grep -v '^===' "$LOG" | tail -n 1)"
    agent_stop dir1 KILL
    echo "round $r: killed after ${delay_ms} ms; journal $(cat "$STATE/ledger.journal" 2>/dev/null | wc -c) bytes"
    if [ $((r % 3)) -eq 2 ]; then
        printf '%08x {"seq":%d,"services":[{"key":{"type":"tup' 0 999999 >>"$STATE/ledger.journal"
        TORN=$((TORN + 1))
        echo "round $r: left a torn record at the end of the journal"
    fi
    agent_start dir1
    r=$((r + 1))
done

# After the last restart: the table converges, then one more full sync
# (SIGHUP) must leave it exactly so.
loaded_since_start() { awk '/^=== agent start/ { n = 0 } /ledger (loaded|unusable)/ { n++ } END { exit !(n > 0) }' "$LOG"; }
wait_until 30 loaded_since_start
ledger_usable
{ echo "$FOREIGN"; desired; } | ipvs_expect dir1 180
full_syncs() { awk '/^=== agent start/ { n = 0 } /sync done full=true/ { n++ } END { print n + 0 }' "$LOG"; }
before="$(full_syncs)"
kill -HUP "$(cat "$LAB_AGENT_RUN/dir1.pid")"
more_full_syncs() { [ "$(full_syncs)" -gt "$before" ]; }
wait_until 120 more_full_syncs || fail "no full sync within 120 s after SIGHUP"
{ echo "$FOREIGN"; desired; } | ipvs_expect dir1 5
echo "ok: exactly the desired and the foreign rules after a full sync"

# The VIPs on dir1: exactly the desired ones in 203.0.113.100-109.
got="$(ip -n dir1 -o -4 addr show | awk '{ split($4, a, "/"); if (a[1] ~ /^203\.0\.113\.1[0-9][0-9]$/) print a[1] }' | LC_ALL=C sort)"
expect_eq "VIPs on dir1" "$(desired_vips | LC_ALL=C sort)" "$got"

# The agent's own report: nothing foreign, no error.
status="$(nsx dir1 timeout 10 wget -q -O - http://127.0.0.1:9477/status)" || fail "cannot read /status"
case "$status" in *oreign*) fail "the agent reports foreign rules: $(echo "$status" | grep -o '"[^"]*oreign[^"]*"' | head -n 3 | tr '\n' ' ')" ;; esac
echo "$status" | grep -q '^  "ok": true' || fail "the agent's status is not ok: $(echo "$status" | grep -A 8 '^  "errors"' | tr -s ' \n' ' ' | head -c 600)"
echo "ok: /status reports ok, nothing foreign"

# The ledger loaded every time: nothing moved aside, no start without it.
ls "$STATE"
aside="$(ls "$STATE" | grep corrupt)"
[ -z "$aside" ] || fail "ledger quarantined: $aside"
grep -q "ledger unusable" "$LOG" && fail "an agent start found the ledger unusable: $(grep -m1 'ledger unusable' "$LOG")"
dropped="$(grep -c 'dropping a last record cut short' "$LOG")"
[ "$dropped" -ge "$TORN" ] || fail "$TORN torn records were left in the journal, but the agent logged dropping only $dropped"
echo "ok: ledger loaded at every start; torn journal records dropped: $dropped ($TORN left by the scenario)"
