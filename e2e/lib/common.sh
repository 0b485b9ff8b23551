# Host-side shell helpers shared by the e2e labs. Source it from bash:
#   . "$(dirname "$0")/../lib/common.sh"
# shellcheck shell=bash

# Repository root (the directory holding the workspace Cargo.toml).
LVS_REPO="${LVS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
# Cache for downloaded and built lab artefacts (git-ignored).
LVS_CACHE="${LVS_CACHE:-$LVS_REPO/.cache}"

lvs_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
lvs_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# lvs_need_root: the labs install packages and boot VMs as root.
lvs_need_root() {
    [ "$(id -u)" -eq 0 ] || lvs_die "must run as root (apt-get install, qemu)"
}

# lvs_apt_ensure PKG...: install the packages that are not installed yet.
# lvs_apt ARGS...: apt-get under one lock for the whole machine, so that the
# background builds (prebuild.sh) and a suite never run apt-get at once (the
# second would fail on dpkg's lock instead of waiting).
lvs_apt() { flock /tmp/lvs-operator-apt.lock apt-get "$@"; }

lvs_apt_ensure() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    lvs_log "apt-get install ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive lvs_apt install -y --no-install-recommends "${missing[@]}" >&2; then
        lvs_log "apt-get install failed; running apt-get update and retrying"
        lvs_apt update >&2 || lvs_die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive lvs_apt install -y --no-install-recommends "${missing[@]}" >&2 \
            || lvs_die "apt-get install ${missing[*]} failed"
    fi
}

# lvs_now_ms: wall clock in milliseconds, for timings.
lvs_now_ms() { date +%s%3N; }

# lvs_retry SECS CMD...: run CMD every 0.5 s until it succeeds; 1 when SECS
# have passed without success.
lvs_retry() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

# lvs_free_port FROM: the first TCP port from FROM up (200 tried) with no
# listener on this host; 1 with a message when there is none.
lvs_free_port() {
    local p=$1 limit=$(($1 + 200))
    while ((p < limit)); do
        [[ -n $(ss -Hltn "sport = :$p") ]] || { echo "$p"; return 0; }
        p=$((p + 1))
    done
    echo "no free TCP port in $1..$limit" >&2
    return 1
}

# lvs_pid_alive PIDFILE: the process whose pid PIDFILE holds exists.
lvs_pid_alive() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

# lvs_proc_start PIDFILE LOG CMD...: start CMD in the background, stdin from
# /dev/null and its output in LOG, with its pid in PIDFILE.
lvs_proc_start() {
    local pidfile=$1 log=$2
    shift 2
    mkdir -p "$(dirname "$pidfile")"
    "$@" >"$log" 2>&1 </dev/null &
    echo $! >"$pidfile"
}

# lvs_proc_stop PIDFILE [SIGNAL] [SECS]: send SIGNAL (default TERM) to the
# process in PIDFILE, and to its process group when it leads one (setsid), wait
# up to SECS (default 10) for it to exit, then KILL it and whatever is left of
# its group; PIDFILE goes away.
lvs_proc_stop() {
    local pidfile=$1 sig=${2:-TERM} secs=${3:-10} pid i
    [[ -f $pidfile ]] || return 0
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        kill "-$sig" -- "-$pid" 2>/dev/null || kill "-$sig" "$pid" 2>/dev/null || true
        for ((i = 0; i < secs * 4; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -0 "$pid" 2>/dev/null && lvs_log "pid $pid ($(basename "$pidfile" .pid)) still runs ${secs}s after SIG$sig; sending SIGKILL"
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
}
