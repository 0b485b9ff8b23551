# Guest half of `make bench` (busybox sh, run by e2e/kernel/run-vm.sh as the
# VM's workload). Runs every measurement in this one VM boot and appends one
# line per measurement to /out/raw.txt:
#
#   metric=<m> contender=<c> n=<N> m=<M> key=value ...
#
# e2e/bench/report.py turns those lines into results.csv, report.md and the
# plot. Every contender works in a fresh network namespace (its own, empty
# IPVS table): a flushed table leaves its destinations in the kernel's
# dest_trash list for up to two minutes, and every later NEW_DEST walks that
# list, which would bill one contender for the previous one's table.
#
# Sizes come from the environment (set by run.sh):
#   BENCH_CONVERGE  "NxM ..."   converge-from-empty sizes
#   BENCH_READ      "NxM ..."   full-read sizes
#   BENCH_CHANGE    "N ..."     one-change table sizes (M=10)
#   BENCH_RSS       "N ..."     agent memory sizes (M=10)
#   BENCH_RESYNC    "NxM ..."   periodic no-op resync sizes
#   BENCH_STRESS_POOL           RealServer objects in the agent stress run
#   BENCH_STRESS_N              VirtualServices (×10) in the stress run
#   BENCH_PERIODIC              no-op full resyncs to time at the
#                               BENCH_RESYNC sizes, each started with SIGHUP
#   BENCH_RESYNC_CHANGES        at the BENCH_RESYNC sizes, weight changes
#                               made while a no-op full resync runs (0: none)
#                               (0: only the daemon's adopting resync)
#   BENCH_REPEAT                repetitions of the small measurements
#   BENCH_READ_REPEAT           repetitions of each full read (default
#                               BENCH_REPEAT)
#   BENCH_READ_GOIPVS_MAX       the Go library's full read (once) only up to
#                               this many services
#   BENCH_CHECK_IPVSADM_MAX     above this many services, only ipvsadm's own
#                               table is checked with ipvsadm -Sn (see check)
#   BENCH_AGENT                 1 to include the node agent
#   BENCH_CONTENDERS            the other contenders to converge (default all:
#                               ipvsadm go-ipvs lib-batch1 ... lib-batch256)
#   BENCH_AGENT_CHANGE  "N ..." the agent's one-change sizes (default BENCH_CHANGE)
#   BENCH_AGENT_MAX_N           largest N run with the agent (larger: skipped)
#   BENCH_AGENT_MAX_RS          largest RealServer pool for the stress run (a
#                               larger BENCH_STRESS_POOL is recorded as
#                               skipped and run at this size instead)
#   BENCH_VIP_MODE              the agent's --vip-mode (default route: IPv4
#                               VIPs as local routes, the choice for many VIPs)
#   BENCH_CHANGE_REPEAT         rounds of the agent's four one-change operations
#                               (each op's median is reported)
#   BENCH_CHANGE_CAPTURE        how many of those rounds (the first ones) count
#                               the netlink requests with an nlmon capture (the
#                               agent's requests per change do not vary; a
#                               capture costs about a second per change)
#   BENCH_CHANGE_POLL_MS        the daemon's directory poll during those rounds
#                               (its fallback: inotify wakes it on the rename)
#   BENCH_CHANGE_WAIT_POLL_MS   how often lvs-bench wait looks for the change
#                               in the kernel (one small netlink request)
#   BENCH_LIB_CHANGE_REPEAT     rounds of the libraries' one-change calls: each
#                               takes ~0.1 ms under TCG, where a median of few
#                               calls is noise
#   BENCH_HEALTH    "NxM ..."   health_cpu sizes: the agent probing N*M
#                               distinct destinations (TCP checks, 5 s
#                               interval), all answering
#   BENCH_HEALTH_WINDOW         seconds over which health_cpu is measured
. /lab/lib.sh
set -u

R=/out/raw.txt
BENCH_CONVERGE="${BENCH_CONVERGE:-1000x1 1000x10}"
BENCH_READ="${BENCH_READ:-1000x4}"
BENCH_CHANGE="${BENCH_CHANGE:-1000}"
BENCH_RSS="${BENCH_RSS:-1000}"
BENCH_RESYNC="${BENCH_RESYNC:-1000x10}"
BENCH_STRESS_POOL="${BENCH_STRESS_POOL:-0}"
BENCH_REPEAT="${BENCH_REPEAT:-3}"
BENCH_AGENT="${BENCH_AGENT:-1}"
BENCH_PERIODIC="${BENCH_PERIODIC:-2}"
BENCH_RESYNC_CHANGES="${BENCH_RESYNC_CHANGES:-10}"
BENCH_STRESS_N="${BENCH_STRESS_N:-100}"
BENCH_AGENT_CHANGE="${BENCH_AGENT_CHANGE:-$BENCH_CHANGE}"
BENCH_AGENT_MAX_N="${BENCH_AGENT_MAX_N:-1000000}"
BENCH_AGENT_MAX_RS="${BENCH_AGENT_MAX_RS:-1000000}"
BENCH_CHECK_IPVSADM_MAX="${BENCH_CHECK_IPVSADM_MAX:-1000000}"
BENCH_READ_REPEAT="${BENCH_READ_REPEAT:-$BENCH_REPEAT}"
BENCH_READ_GOIPVS_MAX="${BENCH_READ_GOIPVS_MAX:-1000000}"
BENCH_VIP_MODE="${BENCH_VIP_MODE:-route}"
BENCH_CHANGE_REPEAT="${BENCH_CHANGE_REPEAT:-5}"
BENCH_CHANGE_POLL_MS="${BENCH_CHANGE_POLL_MS:-20}"
BENCH_CHANGE_CAPTURE="${BENCH_CHANGE_CAPTURE:-$BENCH_CHANGE_REPEAT}"
BENCH_CHANGE_WAIT_POLL_MS="${BENCH_CHANGE_WAIT_POLL_MS:-5}"
BENCH_LIB_CHANGE_REPEAT="${BENCH_LIB_CHANGE_REPEAT:-200}"
BENCH_HEALTH="${BENCH_HEALTH:-1000x10}"
BENCH_HEALTH_WINDOW="${BENCH_HEALTH_WINDOW:-30}"
# Every agent run below (--once and daemons) holds its VIPs this way.
export LVS_VIP_MODE="$BENCH_VIP_MODE"
LIB_BATCHES="1 16 64 256"
BENCH_CONTENDERS="${BENCH_CONTENDERS:-ipvsadm go-ipvs lib-batch1 lib-batch16 lib-batch64 lib-batch256}"
NODE_IP=10.0.0.2
PROBE_SVC=172.30.0.1:80
PROBE_SVC2=172.30.0.2:80
EXTRA_DEST=10.9.0.1:8080
NEW_SVC=172.31.0.1:80

mkdir -p /tmp/b /out/logs
: >"$R"
: >/tmp/b/problems

rec() { echo "$*" >>"$R"; lab_log "$*"; }
# problem WHY: recorded, counted at the end (also from subshells).
problem() { echo "$*" >>/tmp/b/problems; echo "metric=problem what=\"$*\"" >>"$R"; lab_log "PROBLEM: $*" >&2; }

# The modules the contenders use are loaded before anything is timed, as on
# a node that runs a load balancer: ip_vs and its scheduler for all of them,
# nf_tables for the agent (a full read looks for its table; without the
# module the kernel would load it inside the first agent run).
modprobe ip_vs && modprobe ip_vs_rr && modprobe nf_tables && modprobe nlmon && modprobe dummy \
    || { echo "modules missing"; exit 1; }
FAMILY="$(lvs-bench family | sed 's/family_id=//')"
rec "metric=env kernel=$(uname -r) cpus=$(nproc) mem_kb=$(awk '/MemTotal/ {print $2}' /proc/meminfo) ipvs_family=$FAMILY ipvsadm=\"$(ipvsadm --version 2>&1 | head -n1 | tr ' ' '_')\""

# --- namespaces -------------------------------------------------------------------
NS="" NS_SEQ=0
ns_new() {
    NS_SEQ=$((NS_SEQ + 1)); NS="b$NS_SEQ"
    ip netns add "$NS" && ip -n "$NS" link set lo up || { echo "netns $NS failed"; exit 1; }
}
ns_del() {
    [ -n "$NS" ] || return 0
    for p in $(ip netns pids "$NS" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    nsx "$NS" ipvsadm -C 2>/dev/null
    ip netns del "$NS"
    NS=""
    # The table was flushed above (synchronously); what the kernel's netns
    # cleanup still does afterwards is small.
    sleep 0.2
}
inns() { nsx "$NS" "$@"; }

# kv FILE [PREFIX]: the key=value words of FILE's last line (a tool's result
# line), with PREFIX before each key.
kv() { tail -n 1 "$1" 2>/dev/null | tr ' ' '\n' | grep '=' | sed "s/^/${2:-}/" | tr '\n' ' '; }

rules_file() { # N M [POOL]
    _f="/tmp/b/rules-$1x$2-${3:-1000}"
    if [ ! -f "$_f" ]; then
        if ! lvs-bench gen-rules --n "$1" --m "$2" --pool "${3:-1000}" >"$_f.tmp" || [ ! -s "$_f.tmp" ]; then
            problem "lvs-bench gen-rules --n $1 --m $2 --pool ${3:-1000} failed"
            rm -f "$_f.tmp"
        else
            mv "$_f.tmp" "$_f"
        fi
    fi
    echo "$_f"
}

# check N M CONTENDER [POOL]: the namespace's table (`ipvsadm -Sn`) holds
# exactly the rules' lines (ipvsadm lists in hash order: compared as sets).
# Above BENCH_CHECK_IPVSADM_MAX services ipvsadm -Sn takes most of a minute
# under TCG (one dump per service), so there only ipvsadm's own table is
# listed by it, together with the library's dump (`lvs-bench read`) of the
# same table; both must equal the rules. The other contenders' tables are
# then listed by that cross-checked dump (on two sockets: the check's time is
# no measurement, and one dump request per service makes it the larger part
# of the VM's time at 20k services).
check() {
    _f="$(rules_file "$1" "$2" "${4:-1000}")"
    _via=ipvsadm
    if [ "$1" -gt "$BENCH_CHECK_IPVSADM_MAX" ] && [ "$3" != ipvsadm ]; then
        _via=lib-read
        inns lvs-bench read --connections 2 --save /tmp/b/actual >/dev/null || problem "lvs-bench read of $3's table at $1x$2 failed"
    else
        inns ipvsadm -Sn >/tmp/b/actual
        if [ "$1" -gt "$BENCH_CHECK_IPVSADM_MAX" ]; then
            inns lvs-bench read --connections 2 --save /tmp/b/libsave >/dev/null || problem "lvs-bench read at $1x$2 failed"
            lvs-bench same-lines "$_f" /tmp/b/libsave >/dev/null 2>&1 \
                || problem "lvs-bench read of ipvsadm's table at $1x$2 differs from ipvsadm -Sn's rules"
        fi
    fi
    if lvs-bench same-lines "$_f" /tmp/b/actual >/tmp/b/same 2>/tmp/b/same.err; then
        rec "metric=check contender=$3 n=$1 m=$2 ok=1 via=$_via $(kv /tmp/b/same)"
    else
        rec "metric=check contender=$3 n=$1 m=$2 ok=0 via=$_via $(kv /tmp/b/same)"
        cat /tmp/b/same.err
        problem "table of $3 at $1x$2 differs from the rules"
    fi
}

# --- nlmon capture ------------------------------------------------------------------
CAP_PID=""
cap_start() {
    ip -n "$NS" link show nlmon0 >/dev/null 2>&1 || {
        ip -n "$NS" link add nlmon0 type nlmon && ip -n "$NS" link set nlmon0 up
    }
    rm -f /tmp/b/cap.pcap /tmp/b/cap.err /tmp/b/capcount
    nsenter --net="/run/netns/$NS" tcpdump -Z root --immediate-mode -B 65536 -i nlmon0 -U -s 65535 -w /tmp/b/cap.pcap 2>/tmp/b/cap.err &
    CAP_PID=$!
    _i=0
    while ! grep -q 'listening on' /tmp/b/cap.err 2>/dev/null; do
        _i=$((_i + 1)); [ "$_i" -lt 100 ] || { problem "tcpdump did not start"; return 1; }
        sleep 0.1
    done
}
# cap_stop: stop the capture; its request counts go to /tmp/b/capcount.
# Not from a $(...) subshell: only this shell can wait for tcpdump.
cap_stop() {
    sleep 0.3
    kill -INT "$CAP_PID"; wait "$CAP_PID"
    grep -q '^0 packets dropped by kernel' /tmp/b/cap.err || problem "capture dropped packets: $(tr '\n' ' ' </tmp/b/cap.err)"
    lvs-bench nlcount /tmp/b/cap.pcap --family "$FAMILY" >/tmp/b/capcount || problem "counting the capture failed"
}

# --- node agent -----------------------------------------------------------------------
AGENT_PID="" AGENT_DIR="" AGENT_LOG="" AGENT_SEQ=0
agent_manifests() { # N M [POOL] -> directory
    _d="/tmp/b/man-$1x$2-${3:-1000}"
    [ -d "$_d" ] || lvs-bench gen-manifests --n "$1" --m "$2" --pool "${3:-1000}" --dir "$_d" --node-ip "$NODE_IP" \
        || problem "lvs-bench gen-manifests --n $1 --m $2 --pool ${3:-1000} failed"
    echo "$_d"
}
agent_net() {
    ip -n "$NS" link add bench0 type dummy && ip -n "$NS" addr add "$NODE_IP/24" dev bench0 && ip -n "$NS" link set bench0 up
}
# agent_start DIR STATE RESYNC POLL_MS [BINARY]: daemon in $NS (BINARY:
# node-agent, or node-agent-musl for the static build the image ships).
agent_start() {
    AGENT_SEQ=$((AGENT_SEQ + 1)); AGENT_LOG="/out/logs/agent-$NS-$AGENT_SEQ.log"
    env LVS_LOG=info LVS_RESYNC_MAX_SHARE=100 nsenter --net="/run/netns/$NS" "${5:-node-agent}" --config-dir "$1" --node-name bench \
        --state-dir "$2" --resync-interval "$3" --poll-interval-ms "$4" --listen 127.0.0.1:9477 \
        >>"$AGENT_LOG" 2>&1 &
    AGENT_PID=$!
}
agent_stop() {
    [ -n "$AGENT_PID" ] || return 0
    kill -TERM "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null
    AGENT_PID=""
}
# syncs MODE: the syncs of MODE (full, incremental) this daemon has logged.
# From its log, not /metrics: a scrape of a large table costs the agent CPU
# that would be billed to the change being timed.
syncs() {
    case "$1" in full) _full=true ;; *) _full=false ;; esac
    tr -d '\033' <"$AGENT_LOG" | grep 'sync done' | grep -c "full=$_full"
}
# wait_syncs MODE COUNT SECS: until the agent has done COUNT syncs of MODE.
wait_syncs() {
    _deadline=$(( $(date +%s) + $3 ))
    while :; do
        _s="$(syncs "$1")"
        [ -n "$_s" ] && [ "$_s" -ge "$2" ] && return 0
        pid_running "$AGENT_PID" || { problem "agent died (log: $(tail -n 2 "$AGENT_LOG" | tr '\n' ' '))"; return 1; }
        [ "$(date +%s)" -lt "$_deadline" ] || { problem "agent: $1 syncs stayed at ${_s:-none}, wanted $2 within $3 s"; return 1; }
        sleep 0.2
    done
}
# wait_live SECS: until the agent's first read of the live counters since its
# start has ended (a read of the whole table in steps; one change measured
# while it runs would count its requests).
wait_live() {
    _deadline=$(( $(date +%s) + $1 ))
    until tr -d '\033' <"$AGENT_LOG" | grep -q 'live counters: the first read since the start is done'; do
        pid_running "$AGENT_PID" || { problem "agent died (log: $(tail -n 2 "$AGENT_LOG" | tr '\n' ' '))"; return 1; }
        [ "$(date +%s)" -lt "$_deadline" ] || { problem "agent: no first read of the live counters within $1 s"; return 1; }
        sleep 0.2
    done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }

# ================= converge from empty ================================================
converge() { # N M CONTENDER -> leaves $NS with the table
    _n="$1" _m="$2" _c="$3"
    _f="$(rules_file "$_n" "$_m")"
    ns_new
    rm -f /tmp/b/inner
    case "$_c" in
        ipvsadm) inns lvs-bench time --stdin "$_f" -- ipvsadm -R >/tmp/b/outer ;;
        go-ipvs) inns lvs-bench time --stdout /tmp/b/inner -- goipvs converge "$_f" >/tmp/b/outer ;;
        lib-batch*) inns lvs-bench time --stdout /tmp/b/inner -- lvs-bench converge --rules "$_f" --batch "${_c#lib-batch}" >/tmp/b/outer ;;
        agent)
            _d="$(agent_manifests "$_n" "$_m")"
            agent_net
            rm -rf "/tmp/b/state-$NS"
            inns lvs-bench time --stdout /tmp/b/once.json -- env LVS_LOG=info node-agent --once --config-dir "$_d" \
                --node-name bench --state-dir "/tmp/b/state-$NS" >/tmp/b/outer 2>"/out/logs/agent-once-$NS.log"
            grep 'sync done' "/out/logs/agent-once-$NS.log" | tr -d '\033' | sed 's/\[[0-9;]*m//g' \
                | sed -n 's/.*elapsed_ms=\([0-9]*\).*/sync_ms=\1/p' | tail -n1 >/tmp/b/inner
            ;;
    esac
    _rc=$?
    [ "$_rc" -eq 0 ] || problem "converge $_c at ${_n}x$_m failed (rc $_rc)"
    rec "metric=converge contender=$_c n=$_n m=$_m ops=$((_n * (_m + 1))) $(kv /tmp/b/outer) $(kv /tmp/b/inner inner_)"
    check "$_n" "$_m" "$_c"
}

# ================= one change in a table of N =========================================
one_change_libs() { # N M, in the current namespace (a table built from the rules)
    _cn="$1" _cm="$2"
    # BENCH_REPEAT processes per batch size, interleaved: one process's
    # median of ~0.1 ms calls under TCG shifts as a whole (up to 2x) from
    # one process to the next, so the report takes the median of them.
    _r=0
    while [ "$_r" -lt "$BENCH_REPEAT" ]; do
        _r=$((_r + 1))
        for b in $LIB_BATCHES; do
            inns lvs-bench change --svc 172.16.0.1:80 --dest "$EXTRA_DEST" --new-svc "$NEW_SVC" \
                --repeat "$BENCH_LIB_CHANGE_REPEAT" --batch "$b" >/tmp/b/inner || problem "lvs-bench change failed"
            rec "metric=one_change contender=lib-batch$b n=$_cn m=$_cm process=$_r $(kv /tmp/b/inner)"
        done
    done
    cap_start && inns lvs-bench change --svc 172.16.0.1:80 --dest "$EXTRA_DEST" --new-svc "$NEW_SVC" --repeat 1 >/dev/null
    cap_stop
    rec "metric=one_change_capture contender=lib-batch64 n=$_cn m=$_cm ops=5 $(kv /tmp/b/capcount)"

    inns goipvs change 172.16.0.1:80 "$EXTRA_DEST" "$NEW_SVC" "$((BENCH_REPEAT * 5))" >/tmp/b/inner || problem "goipvs change failed"
    rec "metric=one_change contender=go-ipvs n=$_cn m=$_cm $(kv /tmp/b/inner)"
    cap_start && inns goipvs change 172.16.0.1:80 "$EXTRA_DEST" "$NEW_SVC" 1 >/dev/null
    cap_stop
    rec "metric=one_change_capture contender=go-ipvs n=$_cn m=$_cm ops=5 $(kv /tmp/b/capcount)"

    # ipvsadm: one process per change, as it is used.
    i=0
    while [ "$i" -lt "$((BENCH_REPEAT * 2))" ]; do
        for op in add_dest set_weight del_dest add_svc; do
            case "$op" in
                add_dest) set -- -a -t 172.16.0.1:80 -r "$EXTRA_DEST" -m -w 1 ;;
                set_weight) set -- -e -t 172.16.0.1:80 -r "$EXTRA_DEST" -m -w 5 ;;
                del_dest) set -- -d -t 172.16.0.1:80 -r "$EXTRA_DEST" ;;
                add_svc) set -- -A -t "$NEW_SVC" -s rr ;;
            esac
            if [ "$i" -eq 0 ]; then
                cap_start && inns ipvsadm "$@"
                cap_stop
                rec "metric=one_change_capture contender=ipvsadm n=$_cn m=$_cm op=$op ops=1 $(kv /tmp/b/capcount)"
            else
                rec "metric=one_change_sample contender=ipvsadm n=$_cn m=$_cm op=$op $(inns lvs-bench time -- ipvsadm "$@")"
            fi
        done
        inns ipvsadm -D -t "$NEW_SVC"
        i=$((i + 1))
    done
}

# ================= agent: daemon measurements ===========================================
probe_vs() { # NAME VIP:PORT
    cat <<EOF
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: $1
  namespace: bench
spec:
  address: ${2%:*}
  port: ${2#*:}
  protocol: TCP
  scheduler: rr
  forwarding: NAT
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      bench.lvs-operator.io/probe: "$1"
EOF
}
probe_rs() { # WEIGHT
    cat <<EOF
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: rs-probe
  namespace: bench
  labels:
    bench.lvs-operator.io/probe: probe-1
spec:
  address: ${EXTRA_DEST%:*}
  port: ${EXTRA_DEST#*:}
  weight: $1
EOF
}
# sync_ticks PID: CPU ticks of the agent's "sync" thread (the reconciler).
sync_ticks() {
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = sync ] && { awk '{print $14 + $15}' "$t/stat"; return; }
    done
    echo 0
}
last_sync_line() { tr -d '\033' <"$AGENT_LOG" | sed 's/\[[0-9;]*m//g' | grep 'sync done' | tail -n 1; }
field() { echo "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | tail -n 1; }

# agent_daemon_suite N M: in the namespace the agent's --once run left. A
# daemon started on the table it built adopts it with one full sync that
# changes nothing (a no-op resync); then memory; then, for the one-change
# sizes, single changes through the manifest directory; then, at the resync
# sizes, no-op full resyncs asked for with SIGHUP.
agent_daemon_suite() {
    _n="$1" _m="$2"
    _d="$(agent_manifests "$_n" "$_m")"
    _state="/tmp/b/state-$NS"
    agent_start "$_d" "$_state" 86400 "$BENCH_CHANGE_POLL_MS"
    _t0="$(date +%s)"
    wait_syncs full 1 1200 || { agent_stop; return 1; }
    _l="$(last_sync_line)"
    rec "metric=agent_adopt contender=agent n=$_n m=$_m wall_s=$(( $(date +%s) - _t0 )) sync_ms=$(field "$_l" elapsed_ms) sync_ops=$(field "$_l" ops) sync_thread_ticks=$(sync_ticks "$AGENT_PID") process_ticks=$(cpu_ticks "$AGENT_PID") hz=100"
    [ "$(field "$_l" ops)" = 0 ] || problem "agent adoption at ${_n}x$_m was not a no-op: $_l"
    rec "metric=rss contender=agent n=$_n m=$_m vmhwm_kb=$(status_kb "$AGENT_PID" VmHWM) vmrss_kb=$(status_kb "$AGENT_PID" VmRSS)"
    if echo " $BENCH_AGENT_CHANGE " | grep -q " $_n "; then
        wait_live 900
        _round=0
        while [ "$_round" -lt "$BENCH_CHANGE_REPEAT" ]; do
        _round=$((_round + 1))
        for op in add_svc add_dest set_weight del_dest del_svc; do
            _inc="$(syncs incremental)"; _inc="${_inc:-0}"
            case "$op" in
                add_svc) probe_vs probe-1 "$PROBE_SVC" >/tmp/b/new.tmp
                    set -- --rename /tmp/b/new.tmp "$_d/30-probe-1.yaml" --svc "$PROBE_SVC" ;;
                add_dest) probe_rs 1 >/tmp/b/new.tmp
                    set -- --rename /tmp/b/new.tmp "$_d/31-probe-rs.yaml" --svc "$PROBE_SVC" --dest "$EXTRA_DEST" --weight 1 ;;
                set_weight) probe_rs 7 >/tmp/b/new.tmp
                    set -- --rename /tmp/b/new.tmp "$_d/31-probe-rs.yaml" --svc "$PROBE_SVC" --dest "$EXTRA_DEST" --weight 7 ;;
                del_dest) set -- --remove "$_d/31-probe-rs.yaml" --svc "$PROBE_SVC" --dest "$EXTRA_DEST" --absent ;;
                # Not a measured operation: it puts the table back for the next round.
                del_svc) set -- --remove "$_d/30-probe-1.yaml" --svc "$PROBE_SVC" --absent ;;
            esac
            _cap=0
            if [ "$_round" -le "$BENCH_CHANGE_CAPTURE" ]; then cap_start || break; _cap=1; fi
            inns lvs-bench wait "$@" --timeout 900 --poll-ms "$BENCH_CHANGE_WAIT_POLL_MS" >/tmp/b/inner || problem "agent change $op not seen in the kernel"
            # The sync that made the change has ended before the capture stops.
            wait_syncs incremental "$((_inc + 1))" 900
            _l="$(last_sync_line)"
            : >/tmp/b/capcount
            [ "$_cap" = 0 ] || cap_stop
            rec "metric=one_change contender=agent n=$_n m=$_m op=$op round=$_round captured=$_cap $(kv /tmp/b/inner) sync_ms=$(field "$_l" elapsed_ms) sync_ops=$(field "$_l" ops) $(kv /tmp/b/capcount)"
        done
        done
        rm -f "$_d"/3*-probe*.yaml
        rec "metric=rss_after_changes contender=agent n=$_n m=$_m vmhwm_kb=$(status_kb "$AGENT_PID" VmHWM) vmrss_kb=$(status_kb "$AGENT_PID" VmRSS)"
    fi
    if echo " $BENCH_RESYNC " | grep -q " ${_n}x$_m " && [ "$BENCH_PERIODIC" -gt 0 ]; then
        # No-op resyncs of this daemon, each asked for with SIGHUP: the same
        # full sync the resync timer runs (read the whole table, plan, find
        # nothing to do), without a second daemon adopting the table first.
        _c0="$(sync_ticks "$AGENT_PID")" _p0="$(cpu_ticks "$AGENT_PID")" _s0="$(syncs full)" _w0="$(date +%s)"
        _i=0
        while [ "$_i" -lt "$BENCH_PERIODIC" ]; do
            _i=$((_i + 1))
            kill -HUP "$AGENT_PID"
            wait_syncs full "$((_s0 + _i))" 1800 || { agent_stop; return 1; }
        done
        _c1="$(sync_ticks "$AGENT_PID")" _p1="$(cpu_ticks "$AGENT_PID")" _s1="$(syncs full)" _w1="$(date +%s)"
        _l="$(last_sync_line)"
        rec "metric=noop_resync_periodic contender=agent n=$_n m=$_m resyncs=$((_s1 - _s0)) sync_thread_ticks=$((_c1 - _c0)) process_ticks=$((_p1 - _p0)) hz=100 wall_s=$((_w1 - _w0)) trigger=sighup incremental=$(syncs incremental) last_sync_ms=$(field "$_l" elapsed_ms) last_sync_ops=$(field "$_l" ops)"
        [ "$(field "$_l" ops)" = 0 ] || problem "agent resync at ${_n}x$_m was not a no-op: $_l"
        rec "metric=rss_after_resyncs contender=agent n=$_n m=$_m vmhwm_kb=$(status_kb "$AGENT_PID" VmHWM) vmrss_kb=$(status_kb "$AGENT_PID" VmRSS)"
        # Changes made while a no-op full resync runs. Round i starts a
        # resync with SIGHUP, waits (i-1)/R of the last resync's duration,
        # then renames a weight change into the manifest directory and
        # times it to the kernel; the round ends with its resync.
        if [ "$BENCH_RESYNC_CHANGES" -gt 0 ]; then
            _ms="$(field "$_l" elapsed_ms)"
            probe_vs probe-1 "$PROBE_SVC" >/tmp/b/new.tmp && mv /tmp/b/new.tmp "$_d/30-probe-1.yaml"
            probe_rs 1 >/tmp/b/new.tmp
            inns lvs-bench wait --rename /tmp/b/new.tmp "$_d/31-probe-rs.yaml" --svc "$PROBE_SVC" --dest "$EXTRA_DEST" \
                --weight 1 --timeout 900 >/dev/null || problem "agent: the probe service for the changes during resyncs never appeared"
            _f0="$(syncs full)" _i=0 _w=1
            while [ "$_i" -lt "$BENCH_RESYNC_CHANGES" ]; do
                _i=$((_i + 1))
                if [ "$_w" = 1 ]; then _w=7; else _w=1; fi
                _delay="$(awk -v ms="$_ms" -v i="$_i" -v k="$BENCH_RESYNC_CHANGES" 'BEGIN { printf "%.3f", ms * (i - 1) / k / 1000 }')"
                probe_rs "$_w" >/tmp/b/new.tmp
                kill -HUP "$AGENT_PID"
                sleep "$_delay"
                inns lvs-bench wait --rename /tmp/b/new.tmp "$_d/31-probe-rs.yaml" --svc "$PROBE_SVC" --dest "$EXTRA_DEST" \
                    --weight "$_w" --timeout 900 --poll-ms "$BENCH_CHANGE_WAIT_POLL_MS" >/tmp/b/inner \
                    || problem "agent: a change during a resync at ${_n}x$_m was not seen in the kernel"
                wait_syncs full "$((_f0 + _i))" 1800 || { agent_stop; return 1; }
                rec "metric=resync_change contender=agent n=$_n m=$_m round=$_i delay_s=$_delay resync_ms=$_ms weight=$_w $(kv /tmp/b/inner)"
            done
            rm -f "$_d"/3*-probe*.yaml
        fi
    fi
    agent_stop
    # The static musl build (the image's binary, with musl's allocator):
    # the same adoption of the same table, then its memory.
    if command -v node-agent-musl >/dev/null 2>&1 && echo " $BENCH_RSS " | grep -q " $_n "; then
        agent_start "$_d" "$_state" 86400 "$BENCH_CHANGE_POLL_MS" node-agent-musl
        if wait_syncs full 1 1200; then
            _l="$(last_sync_line)"
            [ "$(field "$_l" ops)" = 0 ] || problem "agent-musl adoption at ${_n}x$_m was not a no-op: $_l"
            rec "metric=rss contender=agent-musl n=$_n m=$_m vmhwm_kb=$(status_kb "$AGENT_PID" VmHWM) vmrss_kb=$(status_kb "$AGENT_PID" VmRSS)"
        fi
        agent_stop
    fi
}

# ================= health check probing =================================================
# probes_total RESULT: the agent's lvs_agent_health_probes_total for TCP checks
# with RESULT (ok, failed), summed; read outside the measured window (a scrape
# renders one destination_healthy series per destination).
probes_total() {
    inns wget -q -O - http://127.0.0.1:9477/metrics 2>/dev/null \
        | awk -v r="$1" '$1 ~ "^lvs_agent_health_probes_total[{]" && index($1, "result=\"" r "\"") { s += $2 } END { print s + 0 }'
}
_probed_all() { [ "$(probes_total ok)" -ge "$1" ]; }
# health_cpu N M: the agent's CPU share (process CPU time / wall time over
# BENCH_HEALTH_WINDOW) while it probes N*M distinct destinations with TCP
# checks at a 5 s interval, once every target has been probed. The
# realservers are one namespace holding the whole pool as local addresses (an
# AnyIP route), where a second node agent (fake dataplane, nothing to sync)
# listens on the realserver port: its HTTP server accepts without forking.
health_cpu() {
    _n="$1" _m="$2" _pool=$(( $1 * $2 ))
    _d="/tmp/b/health-$1x$2"
    rm -rf "$_d"
    lvs-bench gen-manifests --n "$_n" --m "$_m" --pool "$_pool" --dir "$_d" --node-ip "$NODE_IP" \
        || { problem "lvs-bench gen-manifests for health_cpu ${_n}x$_m failed"; return 1; }
    awk '{ print } $0 == "  forwarding: NAT" { print "  healthCheck: {type: TCP, intervalSeconds: 5, timeoutSeconds: 2}" }' \
        "$_d/20-virtualservices.yaml" >"$_d/.vs" && mv "$_d/.vs" "$_d/20-virtualservices.yaml"
    ns_new; agent_net
    ip netns add hsink && ip -n hsink link set lo up \
        && ip link add hc0 netns "$NS" type veth peer name hc1 netns hsink \
        && ip -n "$NS" addr add 192.168.250.1/30 dev hc0 && ip -n "$NS" link set hc0 up \
        && ip -n hsink addr add 192.168.250.2/30 dev hc1 && ip -n hsink link set hc1 up \
        && ip -n "$NS" route add 10.1.0.0/16 via 192.168.250.2 \
        && ip -n hsink route add local 10.1.0.0/16 dev lo \
        || { problem "health_cpu: the realserver namespace could not be set up"; ip netns del hsink 2>/dev/null; ns_del; return 1; }
    mkdir -p /tmp/b/sink-conf
    nsenter --net=/run/netns/hsink node-agent --config-dir /tmp/b/sink-conf --node-name sink \
        --state-dir /tmp/b/sink-state --dataplane fake --listen 0.0.0.0:8080 --http-max-connections 4096 \
        >>/out/logs/health-sink.log 2>&1 &
    _sink=$!
    agent_start "$_d" "/tmp/b/state-health-$NS" 86400 1000
    if wait_syncs full 1 1200 && wait_until 120 _probed_all "$_pool"; then
        _f0="$(probes_total failed)" _o0="$(probes_total ok)"
        _p0="$(cpu_ticks "$AGENT_PID")" _w0="$(cut -d' ' -f1 /proc/uptime)"
        # The measured window: the agent probes on its own meanwhile.
        sleep "$BENCH_HEALTH_WINDOW"
        _p1="$(cpu_ticks "$AGENT_PID")" _w1="$(cut -d' ' -f1 /proc/uptime)"
        _f1="$(probes_total failed)" _o1="$(probes_total ok)"
        rec "metric=health_cpu contender=agent n=$_n m=$_m destinations=$_pool interval_s=5 process_ticks=$((_p1 - _p0)) hz=100 wall_s=$(awk -v a="$_w0" -v b="$_w1" 'BEGIN { printf "%.2f", b - a }') cpu_share=$(awk -v t="$((_p1 - _p0))" -v a="$_w0" -v b="$_w1" 'BEGIN { printf "%.4f", t / 100 / (b - a) }') probes_ok=$((_o1 - _o0)) probes_failed=$((_f1 - _f0)) vmrss_kb=$(status_kb "$AGENT_PID" VmRSS)"
        # Failed probes here mean the node could not keep up (every target
        # answers): a result for report.md, not a failure of the harness.
    else
        problem "health_cpu ${_n}x$_m: the agent did not probe all $_pool destinations (ok probes: $(probes_total ok), failed: $(probes_total failed))"
    fi
    agent_stop
    kill "$_sink" 2>/dev/null; wait "$_sink" 2>/dev/null
    ip netns del hsink
    ns_del
}

# ================= the run =============================================================
# The agent goes last: its sizes are the slowest, and a timeout then costs
# only agent rows (run.sh recovers every line logged before it).
rec "metric=config contenders=\"$BENCH_CONTENDERS\" converge=\"$BENCH_CONVERGE\" read=\"$BENCH_READ\" change=\"$BENCH_CHANGE\" agent_change=\"$BENCH_AGENT_CHANGE\" rss=\"$BENCH_RSS\" resync=\"$BENCH_RESYNC\" periodic=$BENCH_PERIODIC resync_changes=$BENCH_RESYNC_CHANGES stress_pool=$BENCH_STRESS_POOL stress_n=$BENCH_STRESS_N repeat=$BENCH_REPEAT read_repeat=$BENCH_READ_REPEAT read_goipvs_max=$BENCH_READ_GOIPVS_MAX check_ipvsadm_max=$BENCH_CHECK_IPVSADM_MAX agent=$BENCH_AGENT agent_max_n=$BENCH_AGENT_MAX_N agent_max_rs=$BENCH_AGENT_MAX_RS vip_mode=$BENCH_VIP_MODE change_repeat=$BENCH_CHANGE_REPEAT change_capture=$BENCH_CHANGE_CAPTURE change_poll_ms=$BENCH_CHANGE_POLL_MS change_wait_poll_ms=$BENCH_CHANGE_WAIT_POLL_MS lib_change_repeat=$BENCH_LIB_CHANGE_REPEAT"

CONTENDERS="$BENCH_CONTENDERS"

for sz in $BENCH_CONVERGE; do
    n="${sz%x*}" m="${sz#*x}"
    for c in $CONTENDERS; do
        converge "$n" "$m" "$c"
        # One change in a table of N: on the last library-built table.
        if [ "$c" = lib-batch256 ] && [ "$m" = 10 ] && echo " $BENCH_CHANGE " | grep -q " $n "; then
            one_change_libs "$n" "$m"
        fi
        ns_del
    done
done

# Full read: library dump vs ipvsadm -Sn (and the Go library) on the same table.
for sz in $BENCH_READ; do
    n="${sz%x*}" m="${sz#*x}"
    f="$(rules_file "$n" "$m")"
    ns_new
    inns lvs-bench converge --rules "$f" --batch 256 >/dev/null || problem "building the $sz read table failed"
    # No separate check of the table: the first round compares both reads
    # (ipvsadm -Sn's and the library's) with the rules it was built from.
    i=0
    while [ "$i" -lt "$BENCH_READ_REPEAT" ]; do
        rec "metric=full_read contender=ipvsadm n=$n m=$m $(inns lvs-bench time --stdout /tmp/b/save -- ipvsadm -Sn)"
        inns lvs-bench time --stdout /tmp/b/inner -- lvs-bench read --save /tmp/b/libsave >/tmp/b/outer
        rec "metric=full_read contender=lib-batch64 n=$n m=$m $(kv /tmp/b/outer) $(kv /tmp/b/inner inner_)"
        if [ "$i" -eq 0 ]; then
            if [ "$n" -le "$BENCH_READ_GOIPVS_MAX" ]; then
                inns lvs-bench time --stdout /tmp/b/inner -- goipvs read >/tmp/b/outer
                rec "metric=full_read contender=go-ipvs n=$n m=$m $(kv /tmp/b/outer) $(kv /tmp/b/inner inner_)"
            fi
            _ok=1
            lvs-bench same-lines "$f" /tmp/b/save >/tmp/b/same || { _ok=0; problem "ipvsadm -Sn of the $sz read table differs from the rules"; }
            rec "metric=check contender=read-setup n=$n m=$m ok=$_ok via=ipvsadm $(kv /tmp/b/same)"
            lvs-bench same-lines "$f" /tmp/b/libsave >/dev/null || problem "lvs-bench read of $sz differs from the rules"
        fi
        i=$((i + 1))
    done
    ns_del
done

# The node agent, up to BENCH_AGENT_MAX_N services; larger sizes are
# recorded as skipped (report.md says why).
agent_fits() { [ "$1" -le "$BENCH_AGENT_MAX_N" ] || { rec "metric=skipped contender=agent n=$1 m=$2 what=$3 max_n=$BENCH_AGENT_MAX_N"; return 1; }; }
resync_ns() { for _r in $BENCH_RESYNC; do echo "${_r%x*}"; done; }
agent_daemon_wanted() { [ "$2" = 10 ] && echo " $BENCH_RSS $BENCH_AGENT_CHANGE $(resync_ns | tr '\n' ' ') " | grep -q " $1 "; }
if [ "$BENCH_AGENT" = 1 ]; then
    for sz in $BENCH_CONVERGE; do
        n="${sz%x*}" m="${sz#*x}"
        agent_fits "$n" "$m" converge || continue
        converge "$n" "$m" agent
        agent_daemon_wanted "$n" "$m" && agent_daemon_suite "$n" "$m"
        ns_del
    done
    # Daemon sizes that are not converge sizes.
    for n in $BENCH_RSS $BENCH_AGENT_CHANGE $(resync_ns); do
        echo " $BENCH_CONVERGE " | grep -q " ${n}x10 " && continue
        echo " ${_done:-} " | grep -q " $n " && continue
        _done="${_done:-} $n"
        agent_fits "$n" 10 daemon || continue
        converge "$n" 10 agent
        agent_daemon_suite "$n" 10
        ns_del
    done
    _pool="$BENCH_STRESS_POOL"
    if [ "$_pool" -gt "$BENCH_AGENT_MAX_RS" ]; then
        rec "metric=skipped contender=agent n=$BENCH_STRESS_N m=10 what=stress pool=$_pool max_rs=$BENCH_AGENT_MAX_RS"
        _pool="$BENCH_AGENT_MAX_RS"
    fi
    if [ "$_pool" -gt 0 ]; then
        ns_new; agent_net
        _d="$(agent_manifests "$BENCH_STRESS_N" 10 "$_pool")"
        inns lvs-bench time --stdout /tmp/b/once.json -- node-agent --once --config-dir "$_d" --node-name bench \
            --state-dir "/tmp/b/state-$NS" >/tmp/b/outer 2>"/out/logs/agent-stress.log" || problem "agent stress run failed"
        rec "metric=rss_stress contender=agent n=$BENCH_STRESS_N m=10 pool=$_pool $(kv /tmp/b/outer)"
        check "$BENCH_STRESS_N" 10 agent-stress "$_pool"
        ns_del
    fi
fi

if [ "$BENCH_AGENT" = 1 ]; then
    for sz in $BENCH_HEALTH; do health_cpu "${sz%x*}" "${sz#*x}"; done
fi

FAILURES="$(wc -l </tmp/b/problems)"
rec "metric=done failures=$FAILURES uptime_s=$(cut -d' ' -f1 /proc/uptime)"
[ "$FAILURES" -eq 0 ]
