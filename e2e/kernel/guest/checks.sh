# IPVS and traffic checks for lab scenarios (busybox sh). Sourced by
# /lab/scenario.sh after lib.sh and topology.sh.
# shellcheck shell=sh

# ipvs NODE ARGS...: ipvsadm inside NODE.
ipvs() { _n="$1"; shift; nsx "$_n" ipvsadm "$@"; }

# ipvs_svc_stat NODE -t|-u VIP:PORT FIELD: a service counter from
# `ipvsadm -Ln --stats --exact`; FIELD is conns, inpkts, outpkts, inbytes or outbytes.
ipvs_svc_stat() {
    ipvs "$1" -Ln --stats --exact "$2" "$3" | awk -v f="$4" '
        BEGIN { split("conns inpkts outpkts inbytes outbytes", names, " "); for (i in names) col[names[i]] = i + 2 }
        $1 == "TCP" || $1 == "UDP" || $1 == "SCTP" || $1 == "FWM" { print $(col[f]); exit }'
}

# ipvs_dest_stat NODE -t|-u VIP:PORT RIP:PORT FIELD: a destination counter from
# `ipvsadm -Ln --stats --exact`; FIELD is conns, inpkts, outpkts, inbytes or
# outbytes. OutPkts counts the replies that passed the director (NAT only).
ipvs_dest_stat() {
    ipvs "$1" -Ln --stats --exact "$2" "$3" | awk -v d="$4" -v f="$5" '
        BEGIN { split("conns inpkts outpkts inbytes outbytes", names, " "); for (i in names) col[names[i]] = i + 2 }
        $1 == "->" && $2 == d { print $(col[f]); exit }'
}

# ipvs_dest_field NODE -t|-u VIP:PORT RIP:PORT FIELD: a destination column from
# `ipvsadm -Ln`; FIELD is forward, weight, active or inactive.
ipvs_dest_field() {
    ipvs "$1" -Ln "$2" "$3" | awk -v d="$4" -v f="$5" '
        BEGIN { col["forward"] = 3; col["weight"] = 4; col["active"] = 5; col["inactive"] = 6 }
        $1 == "->" && $2 == d { print $(col[f]); exit }'
}

# ipvs_wait_conns NODE -t VIP:PORT N: wait (up to 8 s) until the service's
# published Conns counter reaches N. IPVS counters are published by the rate
# estimator every 2 s, so packet counts are only final once Conns is.
ipvs_wait_conns() {
    wait_until 8 _ipvs_conns_reached "$@" \
        || fail "$3 on $1: Conns counter stayed at $(ipvs_svc_stat "$1" "$2" "$3" conns), expected $4"
}
_ipvs_conns_reached() { [ "$(ipvs_svc_stat "$1" "$2" "$3" conns)" -ge "$4" ] 2>/dev/null; }

# ipvs_expect_sched NODE -t VIP:PORT SCHED: the service is listed with SCHED.
ipvs_expect_sched() {
    _got="$(ipvs "$1" -Ln "$2" "$3" | awk '$1 == "TCP" || $1 == "UDP" {print $3; exit}')"
    expect_eq "scheduler of $3 in ipvsadm -Ln on $1" "$4" "$_got"
}

# fetch_dist N URL [NODE]: N sequential GETs; sets DIST_<rs>, DIST_ERR and
# DIST_DISTINCT (number of distinct realservers that answered).
fetch_dist() {
    dist_count "$(topo_fetch_n "$1" "$2" "${3:-client}")" "$1 GETs of $2"
}
# dist_count ANSWERS WHAT: count ANSWERS (one realserver name or ERR per line)
# into DIST_<rs>, DIST_ERR and DIST_DISTINCT, and print the distribution of WHAT.
dist_count() {
    _bodies="$1"
    DIST_DISTINCT=0
    for _r in $TOPO_REALSERVERS; do
        _c="$(printf '%s\n' "$_bodies" | topo_count "$_r")"
        eval "DIST_$_r=$_c"
        [ "$_c" -gt 0 ] && DIST_DISTINCT=$((DIST_DISTINCT + 1))
    done
    DIST_ERR="$(printf '%s\n' "$_bodies" | topo_count ERR)"
    DIST_SUMMARY="$(for _r in $TOPO_REALSERVERS; do eval "printf '%s=%s ' $_r \$DIST_$_r"; done)ERR=$DIST_ERR"
    echo "distribution of $2: $DIST_SUMMARY"
}

# --- UDP (lab-dns) ---------------------------------------------------------------

# rs_dns_start NODE ADDR:PORT: lab-dns on NODE answering on ADDR:PORT with
# NODE's name; waits (10 s) until the socket is bound.
rs_dns_start() {
    nsx "$1" sh -c "lab-dns serve $2 $1 </dev/null >/dev/null 2>&1 &"
    wait_until 10 _udp_bound "$1" "${2##*:}" || fail "lab-dns on $1 is not bound to $2"
}
_udp_bound() {
    _hex="$(printf '%04X' "$2")"
    nsx "$1" cat /proc/net/udp /proc/net/udp6 | awk -v p=":$_hex" '$2 ~ p"$" {f=1} END {exit !f}'
}

# udp_dist N VIP:PORT FIRST-SPORT [COUNT]: N client flows, flow i sending COUNT
# (default 1) DNS queries from source port FIRST-SPORT+i, so the director
# schedules each flow afresh. Sets DIST_* as fetch_dist does (one count per
# answer) and UDP_ANSWERS ("<source port> <answering realserver or ERR>" lines).
udp_dist() {
    _p="$3" _end=$(( $3 + $1 )) UDP_ANSWERS=""
    while [ "$_p" -lt "$_end" ]; do
        UDP_ANSWERS="$UDP_ANSWERS$(nsx client lab-dns query "$2" "$_p" "${4:-1}" 0 1000 | awk -v p="$_p" '{print p, $2}')
"
        _p=$((_p + 1))
    done
    dist_count "$(printf '%s' "$UDP_ANSWERS" | awk '{print $2}')" "$(( $1 * ${4:-1} )) queries to $2 from $1 source ports"
}

# udp_expect_conn_table NODE VIP:PORT: for every flow of the last udp_dist, the
# director's connection table sends the client's source port to the realserver
# that answered it.
udp_expect_conn_table() { expect_conn_table "$1" UDP "$2" "$UDP_ANSWERS"; }

# expect_conn_table NODE PROTO VIP:PORT ANSWERS: for every line "<source port>
# <realserver>" of ANSWERS, NODE's connection table (`ipvsadm -Lnc`, PROTO as
# it prints it: TCP, UDP, SCTP) sends the client's source port to that
# realserver.
expect_conn_table() {
    _table="$(ipvs "$1" -Lnc)"
    printf '%s\n' "$4" | while read -r _sp _rs; do
        [ -n "$_sp" ] || continue
        _dst="$(printf '%s\n' "$_table" | awk -v p="$2" -v s="$(topo_ip4 client):$_sp" -v v="$3" '$1 == p && $4 == s && $5 == v { split($6, d, ":"); print d[1]; exit }')"
        [ "$_dst" = "$(topo_ip4 "$_rs")" ] \
            || fail "$2 flow from source port $_sp was answered by $_rs, but $1's connection table sends it to '$_dst'"
    done || exit 1
    echo "ok: $1's $2 connection table agrees with the answers of every flow"
}

# --- SCTP (lab-sctp, a node-agent example the suite packs) ------------------------

# rs_sctp_start NODE IPV4:PORT: lab-sctp on NODE accepting associations on
# IPV4:PORT and answering with NODE's name; waits (10 s) until it listens on
# that address (another server may already listen on the port elsewhere).
rs_sctp_start() {
    nsx "$1" sh -c "lab-sctp serve $2 $1 </dev/null >/dev/null 2>&1 &"
    wait_until 10 _sctp_listening "$1" "${2%:*}" "${2##*:}" || fail "lab-sctp on $1 is not listening on $2"
}
# /proc/net/sctp/eps: ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS...; SST 10
# is LISTEN.
_sctp_listening() {
    nsx "$1" cat /proc/net/sctp/eps 2>/dev/null \
        | awk -v a="$2" -v p="$3" '$4 == 10 && $6 == p { for (i = 9; i <= NF; i++) if ($i == a) f = 1 } END {exit !f}'
}

# sctp_dist N VIP:PORT FIRST-SPORT: N associations from the client, one after
# another, association i from source port FIRST-SPORT+i, each sending one
# message and reading the answer. Sets DIST_* as fetch_dist does and
# SCTP_ANSWERS ("<source port> <answering realserver or ERR>" lines).
sctp_dist() {
    SCTP_ANSWERS="$(nsx client lab-sctp query "$2" "$3" "$1" 3000)"
    dist_count "$(printf '%s\n' "$SCTP_ANSWERS" | awk '{print $2}')" "$1 SCTP associations to $2"
}

# dist_of RS: the count for RS from the last fetch_dist.
dist_of() { eval "echo \$DIST_$1"; }

# expect_no_errors: every request of the last fetch_dist was answered.
expect_no_errors() { expect_eq "failed requests ($DIST_SUMMARY)" 0 "$DIST_ERR"; }

# expect_sticky: the last fetch_dist went to exactly one realserver.
expect_sticky() { expect_eq "realservers that answered ($DIST_SUMMARY)" 1 "$DIST_DISTINCT"; }

# dist_winner: the realserver that got every request of the last fetch_dist.
dist_winner() {
    for _r in $TOPO_REALSERVERS; do [ "$(dist_of "$_r")" -gt 0 ] && echo "$_r"; done | head -n1
}

# client_source ADDR: the client's traffic to IPv4 VIPs leaves from ADDR (an
# address of the client's eth0, added if missing), to vary the source for
# source-hashing schedulers.
client_source() {
    /usr/sbin/ip -n client addr replace "$1/24" dev eth0 nodad 2>/dev/null \
        || /usr/sbin/ip -n client addr replace "$1/24" dev eth0
    /usr/sbin/ip -n client route replace 203.0.113.0/24 via 198.51.100.1 src "$1"
}

# hold_conns N VIP PORT: open N idle TCP connections from the client, one at a
# time, each established before the next (the scheduler sees the previous
# ones). They stay open until topo_down.
hold_conns() {
    _i=0
    while [ "$_i" -lt "$1" ]; do
        nsx client sh -c "sleep 600 | nc $2 $3 >/dev/null 2>&1 &"
        _i=$((_i + 1))
        wait_until 5 _client_established "$_i" "$2" "$3" || fail "connection $_i to $2:$3 not established"
    done
}
_client_established() {
    _hex="$(printf '%04X' "$3")"
    _n="$(nsx client cat /proc/net/tcp | awk -v p=":$_hex" '$3 ~ p"$" && $4 == "01"' | wc -l)"
    [ "$_n" -ge "$1" ]
}

# --- scheduler scenarios ---------------------------------------------------------
# sched_service SCHED [PORT] [RSPORT]: on a fresh topology, a NAT service
# 203.0.113.40:PORT (default 8080) on dir1 with scheduler SCHED over rs1..rs3
# (port RSPORT, default 80) with weights rs1=1 rs2=3 rs3=2; checks that
# `ipvsadm -Ln` lists it with SCHED. Call sched_topology first.
SCHED_VIP=203.0.113.40
SCHED_WEIGHTS="rs1=1 rs2=3 rs3=2"
sched_topology() {
    topo_up || fail "topology did not come up"
    topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
    nsx dir1 sysctl -q -w net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.eth0.send_redirects=0
    /usr/sbin/ip -n dir1 addr add "$SCHED_VIP/32" dev eth0
}
sched_service() {
    _svc="$SCHED_VIP:${2:-8080}"
    ipvs dir1 -A -t "$_svc" -s "$1" || fail "ipvsadm -A -t $_svc -s $1 was refused"
    for _rw in $SCHED_WEIGHTS; do
        _r="${_rw%%=*}"
        ipvs dir1 -a -t "$_svc" -r "$(topo_ip4 "$_r"):${3:-80}" -m -w "${_rw#*=}" \
            || fail "ipvsadm -a $_r to $_svc failed"
    done
    ipvs dir1 -Ln -t "$_svc"
    ipvs_expect_sched dir1 -t "$_svc" "$1"
}
# sched_url: the HTTP URL of the scheduler service.
sched_url() { echo "http://$SCHED_VIP:8080/"; }

# expect_active_conns PORT rs1=N rs2=N rs3=N: ActiveConn per destination of
# $SCHED_VIP:PORT, after the held connections are all counted.
expect_active_conns() {
    _port="$1"; shift
    _total=0
    for _rn in "$@"; do _total=$((_total + ${_rn#*=})); done
    wait_until 5 _active_total_is "$_port" "$_total" || true
    ipvs dir1 -Ln -t "$SCHED_VIP:$_port"
    for _rn in "$@"; do
        _r="${_rn%%=*}"
        expect_eq "ActiveConn of $_r on :$_port" "${_rn#*=}" \
            "$(ipvs_dest_field dir1 -t "$SCHED_VIP:$_port" "$(topo_ip4 "$_r"):$_port" active)"
    done
}
_active_total_is() {
    [ "$(ipvs dir1 -Ln -t "$SCHED_VIP:$1" | awk '$1 == "->" && $5 ~ /^[0-9]+$/ {s += $5} END {print s + 0}')" -eq "$2" ]
}

# --- UDP flows (lab-dns, a node-agent example the suite packs) --------------------
# dns_serve NODE...: lab-dns on [::]:53 (IPv4 and IPv6) in each NODE, answering
# with the node's name.
dns_serve() {
    for _n in "$@"; do nsx "$_n" sh -c "lab-dns serve [::]:53 $_n </dev/null >/dev/null 2>&1 &"; done
}
# dns_flows N VIP: N queries from the client to VIP:53, each from a new source
# port, so each is a new IPVS connection. Sets FLOW_ANSWERS (one line per query:
# the realserver that answered, or ERR), FLOW_SERVERS (the distinct answers,
# sorted, space-separated) and FLOW_LAST (uptime in cs when the last query was
# sent).
DNS_SPORT=20000
dns_flows() {
    case "$2" in *:*) _srv="[$2]:53" ;; *) _srv="$2:53" ;; esac
    _out=""
    _i=0
    while [ "$_i" -lt "$1" ]; do
        DNS_SPORT=$((DNS_SPORT + 1))
        _out="$_out$(nsx client lab-dns query "$_srv" "$DNS_SPORT" 1 0 2000)
"
        _i=$((_i + 1))
    done
    FLOW_ANSWERS="$(printf '%s' "$_out" | awk '{print $2}')"
    FLOW_SERVERS="$(printf '%s\n' "$FLOW_ANSWERS" | sort -u | tr '\n' ' ' | sed 's/ $//')"
    FLOW_LAST="$(printf '%s' "$_out" | tail -n 1 | cut -d' ' -f1)"
}

# --- IPv6 neighbour discovery (DR over IPv6) --------------------------------------

# capture_start FILE NODE IFACE [TCPDUMP-ARG...] FILTER: capture on NODE's
# IFACE into FILE (one line per packet) until topo_down; waits until tcpdump
# listens.
capture_start() {
    _file="$1" _node="$2" _if="$3"; shift 3
    rm -f "$_file" "$_file.err"
    nsx "$_node" tcpdump -Z root -l -n -i "$_if" "$@" >"$_file" 2>"$_file.err" &
    wait_until 10 grep -q 'listening on' "$_file.err" \
        || fail "tcpdump on $_node $_if did not start: $(cat "$_file.err")"
}
# nd_capture_start NODE IFACE: capture NODE's neighbour solicitations and
# advertisements on IFACE, with link-layer addresses (tcpdump -e), into
# /tmp/nd.NODE.
nd_capture_start() {
    capture_start "/tmp/nd.$1" "$1" "$2" -e 'icmp6 and (ip6[40] == 135 or ip6[40] == 136)'
}
# nd_seen NODE ns|na TARGET: "<source MAC> <destination MAC>" of every
# solicitation for (ns) or advertisement of (na) TARGET captured on NODE so far.
nd_seen() {
    case "$2" in
        ns) _what="neighbor solicitation, who has $3," ;;
        na) _what="neighbor advertisement, tgt is $3," ;;
    esac
    grep -F "$_what" "/tmp/nd.$1" | awk '{ d = $4; sub(/,$/, "", d); print $2, d }'
}
# nd_seen_count NODE ns|na TARGET [SOURCE-MAC] [DEST-MAC]: how many nd_seen
# lines match (an empty MAC matches any).
nd_seen_count() {
    nd_seen "$1" "$2" "$3" | awk -v s="${4:-}" -v d="${5:-}" '(s == "" || $1 == s) && (d == "" || $2 == d) {n++} END {print n + 0}'
}
_nd_seen_at_least() { [ "$(nd_seen_count "$@")" -ge 1 ]; }
# neigh_state NODE ADDR IFACE: the state of NODE's neighbour entry for ADDR
# (REACHABLE, STALE, DELAY, PROBE, FAILED, ...; empty when there is none).
neigh_state() {
    /usr/sbin/ip -n "$1" -6 neigh show "$2" dev "$3" | awk '{print $NF; exit}'
}
# neigh_lladdr NODE ADDR IFACE: the link-layer address of that entry.
neigh_lladdr() {
    /usr/sbin/ip -n "$1" -6 neigh show "$2" dev "$3" | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") {print $(i + 1); exit}}'
}
_neigh_state_is() { [ "$(neigh_state "$1" "$2" "$3")" = "$4" ]; }
_neigh_lladdr_is() { [ "$(neigh_lladdr "$1" "$2" "$3")" = "$4" ]; }
# icmp6_stat NODE NAME: an ICMPv6 counter of NODE's IPv6 stack from
# /proc/net/snmp6 (e.g. Icmp6InNeighborSolicits: solicitations that reached
# ICMPv6, past the link and multicast-group filters).
icmp6_stat() { nsx "$1" cat /proc/net/snmp6 | awk -v f="$2" '$1 == f {print $2; exit}'; }
