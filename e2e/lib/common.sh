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
lvs_apt_ensure() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    lvs_log "apt-get install ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
        lvs_log "apt-get install failed; running apt-get update and retrying"
        apt-get update >&2 || lvs_die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2 \
            || lvs_die "apt-get install ${missing[*]} failed"
    fi
}

# lvs_now_ms: wall clock in milliseconds, for timings.
lvs_now_ms() { date +%s%3N; }
