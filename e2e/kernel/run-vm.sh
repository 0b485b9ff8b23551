#!/usr/bin/env bash
# Boot the lab VM (Debian cloud kernel under qemu TCG) and run one workload.
#
#   run-vm.sh [options] SCRIPT [ARG...]
#
# SCRIPT is a busybox sh script; it runs as /lab/workload with ARGs, after the
# guest init has mounted /proc, /sys, /dev, /run and /tmp. /lab also holds the
# lab's guest files (lib.sh, topology.sh, agent.sh, scenarios/). Everything the
# workload writes under /out comes back to the host in <out>/files/.
#
# Options:
#   --add SRC:DEST    copy SRC (file or directory) to DEST in the guest; ELF
#                     executables get the libraries ldd lists and lose their
#                     debug info (unless --no-strip). Repeatable.
#   --add-exact SRC:DEST  copy the file SRC to DEST byte for byte: no strip, no
#                     libraries (for a static binary whose exact bytes matter,
#                     such as the one taken out of the image). Repeatable.
#   --env NAME=VALUE  export into the workload's environment. Repeatable.
#   --out DIR         output directory (default $LVS_CACHE/kernel-lab/runs/<time>)
#   --timeout SECS    wall-clock limit for the whole VM (default 300)
#   --mem MB          guest memory (default 1024)
#   --smp N           guest CPUs (default 2; TCG runs one host thread per CPU)
#   --nics N          add N virtio-net NICs on qemu user networking (the host's
#                     loopback appears as 10.0.2.2); the guest loads virtio_net.
#                     NIC i (from 0) has the MAC 52:54:00:00:01:<i in hex>.
#   --hostfwd RULE    qemu hostfwd rule on NIC 0, e.g. tcp:127.0.0.1:7000-:7000
#                     (a host port forwarded into the guest). Repeatable.
#   --nic-hostfwd I:RULE  the same on NIC I (e.g. a NIC the guest moves into a
#                     network namespace). Repeatable.
#   --append STR      extra kernel command line
#   --no-strip        copy ELF files unchanged
#   --keep-initrd     keep <out>/initrd.cpio
#   -v, --verbose     stream the guest console to stderr
#
# Output directory: console.log (the full serial console), channel.log (the data
# channel), files/ (everything the guest sent), qemu.cmd.
# Exit status: the workload's exit status; 124 when the timeout hit; 125 when the
# VM ended without reporting one (crash, panic); 2 on usage errors.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }

ADDS=() EXACTS=() ENVS=() HOSTFWDS=() NIC_HOSTFWDS=() OUT="" TIMEOUT=300 MEM=1024 SMP=2 NICS=0 APPEND="" STRIP=1 KEEP=0 VERBOSE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --add) ADDS+=("$2"); shift 2 ;;
        --add-exact) EXACTS+=("$2"); shift 2 ;;
        --env) ENVS+=("$2"); shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --mem) MEM="$2"; shift 2 ;;
        --smp) SMP="$2"; shift 2 ;;
        --nics) NICS="$2"; shift 2 ;;
        --hostfwd) HOSTFWDS+=("$2"); shift 2 ;;
        --nic-hostfwd) NIC_HOSTFWDS+=("$2"); shift 2 ;;
        --append) APPEND="$2"; shift 2 ;;
        --no-strip) STRIP=0; shift ;;
        --keep-initrd) KEEP=1; shift ;;
        -v|--verbose) VERBOSE=1; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) echo "unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
[ $# -ge 1 ] || usage
SCRIPT="$1"; shift
[ -f "$SCRIPT" ] || lvs_die "workload script $SCRIPT not found"

lvs_need_root
"$HERE/setup.sh" --quiet
KLAB="$LVS_CACHE/kernel-lab"
# shellcheck disable=SC1091
. "$KLAB/current.env"

if [ -z "$OUT" ]; then
    OUT="$KLAB/runs/$(date +%Y%m%d-%H%M%S)-$$"
    # Keep the 30 newest runs.
    mkdir -p "$KLAB/runs"
    ls -1dt "$KLAB"/runs/*/ 2>/dev/null | tail -n +30 | xargs -r rm -rf
fi
rm -rf "$OUT"; mkdir -p "$OUT/files"
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/lab-stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

# canon PATH: PATH inside the guest's merged-/usr layout. The base archive has
# /lib, /lib64, /bin and /sbin as symlinks into /usr; a later archive entry for
# a directory at one of those paths would replace the symlink (the kernel's
# unpacker removes an entry whose type differs), hiding the base's files.
canon() {
    case "$1" in
        /lib/*|/lib64/*|/bin/*|/sbin/*) echo "/usr$1" ;;
        *) echo "$1" ;;
    esac
}

is_elf() { [ "$(head -c 4 "$1" 2>/dev/null | od -An -c | tr -d ' ')" = '177ELF' ]; }

# stage_libs FILE: libraries FILE needs that the base archive lacks (none for
# a static executable, for which ldd fails).
stage_libs() {
    local lib
    { ldd "$1" 2>/dev/null || true; } | awk '/=> \// {print $3} /^[ \t]*\/[^ ]+ \(/ {print $1}' | while read -r lib; do
        lib="$(canon "$lib")"
        [ -e "$KLAB/base-tree$lib" ] || [ -e "$STAGE$lib" ] && continue
        mkdir -p "$STAGE$(dirname "$lib")"
        cp -L "$lib" "$STAGE$lib"
    done
}

# stage_file SRC DEST: copy one file, stripping and adding libraries for ELF.
stage_file() {
    set -- "$1" "$(canon "$2")"
    mkdir -p "$STAGE$(dirname "$2")"
    if is_elf "$1"; then
        if [ "$STRIP" -eq 1 ]; then
            objcopy --strip-debug "$1" "$STAGE$2"
        else
            cp -L "$1" "$STAGE$2"
        fi
        chmod --reference="$1" "$STAGE$2"
        stage_libs "$1"
    else
        cp -L --preserve=mode "$1" "$STAGE$2"
    fi
}

# The lab's own guest files.
mkdir -p "$STAGE/lab" "$STAGE/out"
cp "$HERE/guest/init" "$STAGE/init"; chmod 755 "$STAGE/init"
cp "$HERE"/guest/*.sh "$HERE/topology.sh" "$STAGE/lab/"
cp -r "$HERE/scenarios" "$STAGE/lab/scenarios"
cp "$SCRIPT" "$STAGE/lab/workload"

for a in "${ADDS[@]}"; do
    src="${a%%:*}" dest="${a#*:}"
    [ "$src" != "$a" ] && [ -n "$dest" ] || lvs_die "--add wants SRC:DEST, got '$a'"
    case "$dest" in /*) ;; *) lvs_die "--add destination must be absolute: '$a'" ;; esac
    if [ -d "$src" ]; then
        mkdir -p "$STAGE$(canon "$dest")"
        (cd "$src" && find . -type f) | while read -r f; do stage_file "$src/$f" "$dest/${f#./}"; done
    elif [ -f "$src" ]; then
        stage_file "$src" "$dest"
    else
        lvs_die "--add source $src not found"
    fi
done

for a in "${EXACTS[@]}"; do
    src="${a%%:*}" dest="${a#*:}"
    [ "$src" != "$a" ] && [ -n "$dest" ] || lvs_die "--add-exact wants SRC:DEST, got '$a'"
    case "$dest" in /*) ;; *) lvs_die "--add-exact destination must be absolute: '$a'" ;; esac
    [ -f "$src" ] || lvs_die "--add-exact source $src is not a file"
    mkdir -p "$STAGE$(dirname "$(canon "$dest")")"
    cp --preserve=mode "$src" "$STAGE$(canon "$dest")"
done

# Workload wrapper: environment and arguments, quoted for sh.
q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
    echo '#!/bin/sh'
    for e in "${ENVS[@]}"; do
        case "$e" in *=*) ;; *) lvs_die "--env wants NAME=VALUE, got '$e'" ;; esac
        echo "export ${e%%=*}=$(q "${e#*=}")"
    done
    printf 'exec sh /lab/workload'
    for arg in "$@"; do printf ' %s' "$(q "$arg")"; done
    echo
} >"$STAGE/lab/workload-run.sh"

INITRD="$OUT/initrd.cpio"
cp "$BASE_CPIO" "$INITRD"
(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) >>"$INITRD"

QEMU=(qemu-system-x86_64 -accel tcg -cpu max -smp "$SMP" -m "$MEM"
    -nographic -no-reboot -monitor none
    -serial stdio -serial "file:$OUT/channel.log"
    -kernel "$VMLINUZ" -initrd "$INITRD"
    -append "console=ttyS0 panic=-1 quiet lab.nics=$NICS $APPEND")
[ "${#HOSTFWDS[@]}" -eq 0 ] || [ "$NICS" -ge 1 ] || lvs_die "--hostfwd needs --nics 1 or more"
for ((i = 0; i < NICS; i++)); do
    netdev="user,id=n$i"
    if [ "$i" -eq 0 ]; then
        for f in "${HOSTFWDS[@]}"; do netdev+=",hostfwd=$f"; done
    fi
    for f in "${NIC_HOSTFWDS[@]}"; do
        [ "${f%%:*}" = "$i" ] && netdev+=",hostfwd=${f#*:}"
    done
    QEMU+=(-netdev "$netdev" -device "virtio-net-pci,netdev=n$i,romfile=,mac=$(printf '52:54:00:00:01:%02x' "$i")")
done
printf '%q ' "${QEMU[@]}" >"$OUT/qemu.cmd"; echo >>"$OUT/qemu.cmd"

t0="$(lvs_now_ms)"
set +e
if [ "$VERBOSE" -eq 1 ]; then
    timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>&1 | tee "$OUT/console.log" >&2
    qrc="${PIPESTATUS[0]}"
else
    timeout -k 5 "$TIMEOUT" "${QEMU[@]}" </dev/null >"$OUT/console.log" 2>&1
    qrc=$?
fi
set -e
elapsed=$(( $(lvs_now_ms) - t0 ))
[ "$KEEP" -eq 1 ] || rm -f "$INITRD"

# Extract files from the data channel.
awk -v dir="$OUT/files" '
    { sub(/\r$/, "") }
    /^@@FILE-BEGIN / { name = substr($0, 14); tmp = dir "/.b64"; printf "" > tmp; infile = 1; next }
    /^@@FILE-END /   { close(tmp); path = dir "/" name; sub(/\/[^\/]*$/, "", path)
                       system("mkdir -p \"" path "\" && base64 -d < \"" tmp "\" > \"" dir "/" name "\"; rm -f \"" tmp "\"")
                       infile = 0; next }
    infile { print >> tmp }
' "$OUT/channel.log"

# Read whole files (no early exit in a pipeline: with pipefail, the writer's
# SIGPIPE would end this script).
booted="$(awk '{ sub(/\r$/, "") } /^@@BOOTED / { if (!b) b = $2 } END { print b }' "$OUT/channel.log")"
rc="$(awk '{ sub(/\r$/, "") } /^@@EXIT / { r = $2 } END { print r }' "$OUT/channel.log")"
if [ "$qrc" -eq 124 ] || [ "$qrc" -eq 137 ]; then
    lvs_log "vm: timed out after ${TIMEOUT}s (console: $OUT/console.log)"
    rc=124
elif [ -z "$rc" ]; then
    lvs_log "vm: ended without an exit status (qemu rc $qrc); last console lines:"
    tail -n 20 "$OUT/console.log" >&2
    rc=125
fi
printf 'guest_boot_s=%s\nwall_ms=%s\nrc=%s\n' "${booted:-?}" "$elapsed" "$rc" >"$OUT/timing"
lvs_log "vm: rc=$rc, kernel up at init ${booted:-?}s, wall $((elapsed / 1000)).$(printf '%03d' $((elapsed % 1000)))s, out $OUT"
exit "$rc"
