# Helpers of the health check scenarios (health-*, sorry-server): realserver
# daemons stopped and started again, timestamped request streams from the
# client, and their analysis. Times are guest uptime in centiseconds (cs), the
# one clock the scenario, the streams and lab-dns stamp with.
# shellcheck shell=sh

# now_cs: guest uptime in centiseconds.
now_cs() { sed 's/^\([0-9]*\)\.\([0-9][0-9]\).*/\1\2/' /proc/uptime; }

# _pids_of TEXT COMM: pids of the processes named COMM whose command line
# holds TEXT (one grep over /proc: a process per pid is slow under TCG).
_pids_of() {
    for _f in $(grep -la -- "$1" /proc/[0-9]*/cmdline 2>/dev/null); do
        _p="${_f#/proc/}"; _p="${_p%/cmdline}"
        [ "$(cat "/proc/$_p/comm" 2>/dev/null)" = "$2" ] && echo "$_p"
    done
}
_not_listening() { ! topo_listening "$1" "$2"; }

# rs_httpd_stop NODE: stop NODE's httpd on :80 (topology.sh started it) and
# wait until nothing listens there. STOPPED_AT: when it was killed (cs).
rs_httpd_stop() {
    _pids="$(_pids_of "/run/lab/www/$1" httpd)"
    [ -n "$_pids" ] || fail "no httpd of $1 found"
    kill $_pids
    STOPPED_AT="$(now_cs)"
    wait_until 5 _not_listening "$1" 80 || fail "httpd on $1 still listens on :80"
    echo "ok: httpd on $1 stopped"
}

# rs_httpd_start NODE: start it again and wait until it listens.
rs_httpd_start() {
    nsx "$1" httpd -p 80 -h "/run/lab/www/$1" || fail "cannot start httpd on $1"
    wait_until 5 topo_listening "$1" 80 || fail "httpd on $1 does not listen on :80"
    echo "ok: httpd on $1 started"
}

# rs_health_cgi NODE: a CGI /cgi-bin/health on NODE's httpd that answers with
# the status in /run/lab/health/NODE (default 200); "hang" makes it answer
# only after 30 s (a check times out). busybox httpd passes output starting
# with "HTTP" through as the whole response.
rs_health_cgi() {
    mkdir -p "/run/lab/www/$1/cgi-bin" /run/lab/health
    cat >"/run/lab/www/$1/cgi-bin/health" <<CGI
#!/bin/sh
s="\$(cat /run/lab/health/$1 2>/dev/null)"
[ "\$s" = hang ] && { sleep 30; s=200; }
printf 'HTTP/1.0 %s Lab\r\nContent-Type: text/plain\r\n\r\n%s %s\n' "\${s:-200}" "$1" "\${s:-200}"
CGI
    chmod 755 "/run/lab/www/$1/cgi-bin/health"
}
# rs_health_set NODE STATUS|hang: what NODE's /cgi-bin/health answers next.
rs_health_set() { mkdir -p /run/lab/health && echo "$2" >"/run/lab/health/$1"; }

# stream_start NAME URL: GETs from the client one after another until
# stream_stop, each logged as "<start cs> <body or ERR> <cs taken>" in
# /tmp/stream.NAME; a failed one adds wget's exit code and message.
stream_start() {
    rm -f "/tmp/stream.$1" "/tmp/stream.$1.stop"
    nsx client sh -c '
        cs() { sed "s/^\([0-9]*\)\.\([0-9][0-9]\).*/\1\2/" /proc/uptime; }
        while [ ! -f "$1.stop" ]; do
            t="$(cs)"
            b="$(timeout 5 wget -q -O - "$2" 2>"$1.err")" || b="ERR rc=$? $(tr "\n" " " <"$1.err")"
            echo "$t ${b:-ERR} took=$(( $(cs) - t ))cs"
        done >"$1"' stream "/tmp/stream.$1" "$2" &
    echo "$!" >"/tmp/stream.$1.pid"
}
_stream_ended() { ! pid_running "$(cat "/tmp/stream.$1.pid")"; }
# stream_stop NAME: end the stream (after its request in flight).
stream_stop() {
    touch "/tmp/stream.$1.stop"
    wait_until 10 _stream_ended "$1" || fail "request stream $1 did not stop"
}

# stream_count FILE FROM [WHAT]: lines of FILE (a stream or lab-dns log) stamped
# at FROM cs or later whose body is WHAT (every line when WHAT is empty).
stream_count() {
    awk -v from="$2" -v what="${3:-}" '$1 >= from && (what == "" || $2 == what) { n++ } END { print n + 0 }' "$1"
}
# stream_last FILE FROM WHAT: the stamp of the last WHAT at FROM or later (empty
# when none); stream_first: the first.
stream_last() { awk -v from="$2" -v what="$3" '$1 >= from && $2 == what { t = $1 } END { print t }' "$1"; }
stream_first() { awk -v from="$2" -v what="$3" '$1 >= from && $2 == what { print $1; exit }' "$1"; }
# stream_failures FILE FROM: each failed request stamped at FROM cs or later
# with the two requests before and after it, on one line (empty when none).
stream_failures() {
    awk -v from="$2" '$1 >= from' "$1" | grep -B2 -A2 ' ERR' | tr '\n' ';'
}
# expect_no_failed_requests WHAT FILE FROM: no request of FILE stamped at FROM
# cs or later failed; a failure is named with its neighbours.
expect_no_failed_requests() {
    _n="$(stream_count "$2" "$3" ERR)"
    [ "$_n" = 0 ] || fail "$1: expected '0', got '$_n': $(stream_failures "$2" "$3")"
    echo "ok: $1 = '0'"
}
_stream_has() { [ "$(stream_count "$1" "$2" "${4:-}")" -ge "$3" ]; }
# stream_wait FILE FROM N [WHAT] [SECS]: wait until FILE has N lines (of WHAT)
# stamped at FROM or later.
stream_wait() {
    wait_until "${5:-20}" _stream_has "$1" "$2" "$3" "${4:-}" \
        || fail "$1: $(stream_count "$1" "$2" "${4:-}") lines${4:+ of $4} since ${2}cs within ${5:-20} s, expected $3 (last: $(tail -n 3 "$1" | tr '\n' ' '))"
}

# expect_at_most WHAT LIMIT ACTUAL / expect_at_least WHAT LIMIT ACTUAL
expect_at_most() {
    [ -n "$3" ] && [ "$3" -le "$2" ] || fail "$1: expected at most $2, got '$3'"
    echo "ok: $1 = $3 (at most $2)"
}
expect_at_least() {
    [ -n "$3" ] && [ "$3" -ge "$2" ] || fail "$1: expected at least $2, got '$3'"
    echo "ok: $1 = $3 (at least $2)"
}

# agent_status NODE: the agent's /status (JSON) on NODE, on one line without
# the indentation ("key":value, no blank after the colon or the comma).
agent_status() {
    nsx "$1" timeout 5 wget -q -O - http://127.0.0.1:9477/status 2>/dev/null \
        | tr -d '\n' | sed 's/": /":/g; s/, *"/,"/g; s/{ *"/{"/g; s/\[ *{/[{/g; s/} *}/}}/g; s/} *\]/}]/g'
}
# agent_metrics NODE: its /metrics.
agent_metrics() { nsx "$1" timeout 5 wget -q -O - http://127.0.0.1:9477/metrics 2>/dev/null; }
# expect_dest_state NODE DEST STATE: the agent on NODE reports destination
# DEST (addr:port) in STATE (Failing, Sorry...) for some VirtualService.
_dest_state_is() { agent_status "$1" | grep -q "\"destination\":\"$2\",[^}]*\"state\":\"$3\""; }
expect_dest_state() {
    wait_until 5 _dest_state_is "$@" || fail "/status on $1 does not report $2 as $3: $(agent_status "$1" | grep -o '"destinations":.*' | head -c 600)"
    echo "ok: /status on $1 reports $2 as $3"
}

# manifest_health_vs NAME VIP PORT PROTOCOL FORWARDING APP HEALTHCHECK [EXTRA]:
# a VirtualService on dir1 selecting RealServers labelled app=APP, with
# spec.healthCheck HEALTHCHECK (a YAML flow mapping) and EXTRA spec lines
# (e.g. "sorryServer: {address: 10.0.1.13}").
manifest_health_vs() {
    {
        echo "apiVersion: lvs.lvs-operator.io/v1alpha1"
        echo "kind: VirtualService"
        echo "metadata: {name: $1, namespace: default}"
        echo "spec:"
        echo "  address: \"$2\""
        echo "  port: $3"
        echo "  protocol: $4"
        echo "  scheduler: rr"
        echo "  forwarding: $5"
        echo "  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: \"true\"}}}"
        echo "  realServerSelector: {matchLabels: {app: $6}}"
        echo "  healthCheck: $7"
        [ -n "${8:-}" ] && echo "  $8"
    } | manifest_write "$1"
}

# manifest_rs_addr NAME APP NODE PORT: RealServer NAME at NODE's IPv4 address
# and PORT, labelled app=APP.
manifest_rs_addr() { manifest_rs "$1" "$2" "{address: $(topo_ip4 "$3"), port: $4}"; }

# ipvs_dest_weight NODE -t|-u VIP:PORT RIP:PORT: the destination's weight, or
# "absent".
ipvs_dest_weight() {
    _w="$(ipvs_dest_field "$@" weight)"
    echo "${_w:-absent}"
}
_dest_weight_is() { [ "$(ipvs_dest_weight "$1" "$2" "$3" "$4")" = "$5" ]; }
# wait_dest_weight NODE -t|-u VIP:PORT RIP:PORT WEIGHT|absent SECS: poll (every
# 0.2 s) until the destination has WEIGHT; fails after SECS.
wait_dest_weight() {
    wait_until "$6" _dest_weight_is "$1" "$2" "$3" "$4" "$5" \
        || fail "$4 in $3 on $1: weight $(ipvs_dest_weight "$1" "$2" "$3" "$4") after $6 s, expected $5"
}
