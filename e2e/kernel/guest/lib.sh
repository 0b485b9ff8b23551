# Guest-side helpers for the kernel lab (busybox sh). Source it: . /lab/lib.sh
#
# The busybox shell runs its own applets ahead of $PATH, so `ip` would be
# busybox's (no netns) and `modprobe` busybox's. These functions route the
# names to the real iproute2/kmod tools. Child shells do not inherit them:
# a script run with `sh` must source this file again.
# shellcheck shell=sh

ip() { /usr/sbin/ip "$@"; }
modprobe() { /usr/sbin/modprobe "$@"; }
insmod() { /usr/sbin/insmod "$@"; }
rmmod() { /usr/sbin/rmmod "$@"; }
lsmod() { /usr/sbin/lsmod "$@"; }

LAB_CHAN="${LAB_CHAN:-/dev/ttyS1}"

# --- data channel to the host ---------------------------------------------
# Line protocol on the second serial port, read by run-vm.sh:
#   @@FILE-BEGIN <name> / base64 lines / @@FILE-END <name>  -> <out>/files/<name>
#   @@RESULT PASS <scenario> | @@RESULT FAIL <scenario>: <why>
#   @@EXIT <rc>
lab_channel_init() {
    stty -F "$LAB_CHAN" raw -echo 2>/dev/null || true
}
lab_channel_send() { printf '%s\n' "$*" >"$LAB_CHAN"; }

# lab_emit_file PATH [NAME]: send a file to the host now.
lab_emit_file() {
    _f="$1"; _n="${2:-$(basename "$1")}"
    [ -f "$_f" ] || return 1
    {
        printf '@@FILE-BEGIN %s\n' "$_n"
        base64 <"$_f"
        printf '@@FILE-END %s\n' "$_n"
    } >"$LAB_CHAN"
}

# lab_emit_dir DIR: send every regular file under DIR, named relative to DIR.
lab_emit_dir() {
    ( cd "$1" 2>/dev/null && find . -type f | sed 's|^\./||' ) | while read -r _rel; do
        lab_emit_file "$1/$_rel" "$_rel"
    done
}

# --- small utilities --------------------------------------------------------
lab_log() { echo "[$(cut -d' ' -f1 /proc/uptime)] $*"; }

# nsx NS CMD...: run CMD in network namespace NS. It only switches the network
# namespace (busybox nsenter, cheap under TCG); /sys still shows the root
# namespace. nsx_full uses `ip netns exec`, which also remounts /sys and applies
# /etc/netns/NS: use it for long-running daemons such as the node agent.
nsx() { _ns="$1"; shift; nsenter --net="/run/netns/$_ns" "$@"; }
nsx_full() { _ns="$1"; shift; /usr/sbin/ip netns exec "$_ns" "$@"; }

# wait_until SECS CMD...: poll CMD every 0.2 s until it succeeds; 1 on timeout.
wait_until() {
    _deadline=$(( $(date +%s) + $1 )); shift
    while ! "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$_deadline" ] || return 1
        sleep 0.2
    done
}

# pid_running PID: the process exists and is not a zombie (a dead background
# child stays a zombie until the shell reaps it, and kill -0 still succeeds).
pid_running() {
    _st="$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)"
    [ -n "$_st" ] && [ "$_st" != Z ]
}

# --- scenario assertions ----------------------------------------------------
# A scenario is a script that exits 0 on success. fail() records the reason the
# suite prints on the FAIL line.
LAB_WHY_FILE="${LAB_WHY_FILE:-/tmp/why}"
fail() {
    echo "FAIL: $*"
    printf '%s\n' "$*" >"$LAB_WHY_FILE"
    exit 1
}
# expect_eq WHAT EXPECTED ACTUAL
expect_eq() {
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
    echo "ok: $1 = '$3'"
}
# expect_within WHAT EXPECTED ACTUAL TOLERANCE_PERCENT
expect_within() {
    _lo=$(( $2 * (100 - $4) / 100 )); _hi=$(( ($2 * (100 + $4) + 99) / 100 ))
    [ "$3" -ge "$_lo" ] && [ "$3" -le "$_hi" ] \
        || fail "$1: expected $2 ±$4% ($_lo..$_hi), got $3"
    echo "ok: $1 = $3 (expected $2 ±$4%)"
}
