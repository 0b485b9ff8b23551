#!/usr/bin/env bash
# The kernel lab suite: boots the lab VM once and runs the scenarios in
# e2e/kernel/scenarios/ inside it, each on a fresh topology.
#
#   run-suite.sh [--only REGEX] [--agent PATH] [--image-agent PATH]
#                [--ipvs-examples DIR] [--plugin PATH] [--out DIR] [--list] [-v]
#
# stdout: one line per scenario, `PASS <name>` or `FAIL <name>: <why>`, then
# exactly `N passed, M failed` as the last line. The output of failed
# scenarios (with the kernel log and the agents' logs) goes to stderr. Exit
# status 0 only when everything passed; a lab that cannot be built is a failure
# (FAIL lab-setup), never a skip.
#
#   --only REGEX   run only the scenarios whose name matches (grep -E)
#   --agent PATH   node-agent binary for agent-* scenarios (default: build it
#                  with `cargo build -p lvs-node-agent`, or $NODE_AGENT_BIN)
#   --image-agent PATH  node-agent binary for image-* scenarios, packed byte for
#                  byte as /image/usr/local/bin/node-agent (default: build the
#                  lab image with e2e/image/build.sh and copy the binary out of
#                  it, or $LVS_IMAGE_AGENT_BIN)
#   --ipvs-examples DIR  directory with the lvs-ipvs examples ipvs-dump and
#                  ipvs-apply for ipvs-* scenarios, packed as /usr/bin/ipvs-*
#                  (default: build them with `cargo build -p lvs-ipvs --examples`)
#   --plugin PATH  kubectl-lvs binary for import-* scenarios, packed as
#                  /usr/local/bin/kubectl-lvs with plugin/tests/fixtures as
#                  /lab/import-fixtures (default: build it with
#                  `cargo build -p lvs-kubectl`, or $KUBECTL_LVS_BIN);
#                  import-keepalived-roundtrip also gets the host's
#                  /usr/sbin/keepalived (apt-get installed when missing)
#   --out DIR      keep the run's files there (default
#                  $LVS_CACHE/kernel-lab/runs/suite-<time>)
#   --list         print the scenario names and exit
#   -v             stream the VM console to stderr
#
# Environment: LAB_SCENARIO_TIMEOUT (per scenario, default 120 s),
# LAB_AGENT_LOG (agents' RUST_LOG, default info), LAB_SPECGEN_SEED (the seed
# of agent-kernel-accepts-valid-specs' random specs; default: a new one),
# LVS_CACHE. Lines a scenario prints as `summary: ...` go to stderr.
set -uo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"
# shellcheck source=../lib/image.sh
. "$HERE/../lib/image.sh"
# shellcheck source=../lib/runner.sh
. "$HERE/../lib/runner.sh"

ONLY="" AGENT="${NODE_AGENT_BIN:-}" IMAGE_AGENT="${LVS_IMAGE_AGENT_BIN:-}" IPVS_EXAMPLES="" PLUGIN="${KUBECTL_LVS_BIN:-}" OUT="" LIST=0 VERBOSE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --only) ONLY="$2"; shift 2 ;;
        --agent) AGENT="$2"; shift 2 ;;
        --image-agent) IMAGE_AGENT="$2"; shift 2 ;;
        --ipvs-examples) IPVS_EXAMPLES="$2"; shift 2 ;;
        --plugin) PLUGIN="$2"; shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        --list) LIST=1; shift ;;
        -v|--verbose) VERBOSE=(-v); shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done

# Scenario order: the lab's self-tests first, then the agent scenarios.
mapfile -t ALL < <(cd "$HERE/scenarios" && ls -1 ./*.sh | sed 's|^\./||; s|\.sh$||' \
    | awk '{ print (/^lab-selftest-/ ? 0 : 1) "\t" $0 }' | LC_ALL=C sort | cut -f2)
SELECTED=()
for s in "${ALL[@]}"; do
    [ -z "$ONLY" ] || echo "$s" | grep -Eq -- "$ONLY" || continue
    SELECTED+=("$s")
done
if [ "$LIST" -eq 1 ]; then printf '%s\n' "${SELECTED[@]}"; exit 0; fi

# Results and the summary line go through the labs' one runner
# (e2e/lib/runner.sh); the scenarios themselves run inside the VM, one after
# another, under guest/suite.sh.
runner_init
trap runner_cleanup EXIT
pass() { runner_pass "$1"; }
failed() { runner_fail "$1" "$2"; }
summary() { runner_summary; exit $?; }

if [ "${#SELECTED[@]}" -eq 0 ]; then
    failed lab-suite "no scenario matches '${ONLY}'"
    summary
fi

t_start="$(lvs_now_ms)"
if [ -z "$OUT" ]; then
    OUT="$LVS_CACHE/kernel-lab/runs/suite-$(date +%Y%m%d-%H%M%S)"
    mkdir -p "$LVS_CACHE/kernel-lab/runs"
    ls -1dt "$LVS_CACHE"/kernel-lab/runs/*/ 2>/dev/null | tail -n +30 | xargs -r rm -rf
fi
rm -rf "$OUT"; mkdir -p "$OUT"

if ! "$HERE/setup.sh" 2>"$OUT/setup.log"; then
    failed lab-setup "e2e/kernel/setup.sh failed: $(tail -n1 "$OUT/setup.log")"
    cat "$OUT/setup.log" >&2
    summary
fi
t_setup="$(lvs_now_ms)"

TARGET_DIR="${CARGO_TARGET_DIR:-$LVS_REPO/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$LVS_REPO/$TARGET_DIR" ;; esac

# selects PATTERN: whether a selected scenario's name matches the glob.
selects() {
    local s
    for s in "${SELECTED[@]}"; do
        # shellcheck disable=SC2254
        case "$s" in $1) return 0 ;; esac
    done
    return 1
}

# cargo_build LOGNAME CARGO-BUILD-ARGS...: `cargo build --locked ARGS` in the
# repository, its output in $OUT/LOGNAME-build.log. On failure: the log to
# stderr, and on stdout why, for the scenarios that needed it; status 1.
cargo_build() {
    local log="$OUT/$1-build.log"
    shift
    lvs_log "cargo build --locked $*"
    if (cd "$LVS_REPO" && cargo build --locked "$@") >"$log" 2>&1; then
        return 0
    fi
    cat "$log" >&2
    echo "cargo build $* failed: $(grep -m1 '^error' "$log")"
    return 1
}

# Agent scenarios: agent-*, the health check ones, and any other whose file
# has a line `# lab-needs: agent` (scenarios named after what they prove).
needs_agent() {
    case "$1" in agent-*|health-*|sorry-server) return 0 ;; esac
    grep -q '^# lab-needs: agent' "$HERE/scenarios/$1.sh"
}

# The node agent, when agent scenarios are selected.
RUN=() ADD=() AGENT_PROBLEM=""
for s in "${SELECTED[@]}"; do
    needs_agent "$s" && NEED_AGENT=1
done
if [ "${NEED_AGENT:-0}" -eq 1 ]; then
    if [ -z "$AGENT" ]; then
        if command -v cargo >/dev/null 2>&1; then
            if AGENT_PROBLEM="$(cargo_build agent -p lvs-node-agent)"; then
                for cand in "$TARGET_DIR/debug/node-agent" "$TARGET_DIR/debug/lvs-node-agent"; do
                    [ -x "$cand" ] && { AGENT="$cand"; break; }
                done
                [ -n "$AGENT" ] || AGENT_PROBLEM="cargo build -p lvs-node-agent produced no target/debug/node-agent"
            fi
        else
            AGENT_PROBLEM="no node-agent binary (--agent, NODE_AGENT_BIN) and no cargo to build one"
        fi
    elif [ ! -x "$AGENT" ]; then
        AGENT_PROBLEM="node-agent binary $AGENT is not an executable file"
    fi
    [ -z "$AGENT_PROBLEM" ] && ADD=(--add "$AGENT:/usr/local/bin/node-agent")
fi

# The lab's traffic tools (node-agent examples), each packed as /usr/bin/NAME
# when a scenario that uses it is selected: next to the agent binary, else
# built. lab-dns serves and queries DNS over UDP; lab-sctp opens SCTP
# associations.
DNS_SCENARIOS='health-udp-dns|agent-udp|agent-ops-udp|agent-persistence|agent-thresholds|agent-sched-flags|agent-timeouts|agent-sysctls'
SCTP_SCENARIOS='agent-sctp'
declare -A EXAMPLE_FOR=([lab-dns]="$DNS_SCENARIOS" [lab-sctp]="$SCTP_SCENARIOS") EXAMPLE_PROBLEM=()
for ex in "${!EXAMPLE_FOR[@]}"; do
    printf '%s\n' "${SELECTED[@]}" | grep -qxE "${EXAMPLE_FOR[$ex]}" || continue
    bin="$(dirname "${AGENT:-$TARGET_DIR/debug/node-agent}")/examples/$ex"
    if [ ! -x "$bin" ]; then
        if ! EXAMPLE_PROBLEM[$ex]="$(cargo_build "$ex" -p lvs-node-agent --example "$ex")"; then
            continue
        fi
        unset 'EXAMPLE_PROBLEM[$ex]'
        bin="$TARGET_DIR/debug/examples/$ex"
    fi
    ADD+=(--add "$bin:/usr/bin/$ex")
done
# example_problem SCENARIO: why a tool the scenario needs is missing (empty
# when none is).
example_problem() {
    for ex in "${!EXAMPLE_PROBLEM[@]}"; do
        printf '%s\n' "$1" | grep -qxE "${EXAMPLE_FOR[$ex]}" && { echo "${EXAMPLE_PROBLEM[$ex]}"; return; }
    done
}

# The node agent out of the lab image (the bytes that ship), when image-*
# scenarios are selected. It is taken out on the host and packed into a VM.
# Building the image (a static release build) takes minutes, so it runs in
# the background at the lowest CPU priority while the other scenarios run,
# and the image-* scenarios get a VM of their own once it is done.
IMAGE_ADD=() IMAGE_PROBLEM="" IMAGE_PID=""
if selects 'image-*' && [ -z "$IMAGE_AGENT" ]; then
    lvs_log "e2e/image/build.sh (the lab image) in the background at nice 19, log $OUT/image-build.log"
    nice -n 19 "$LVS_REPO/e2e/image/build.sh" >"$OUT/image-ref" 2>"$OUT/image-build.log" &
    IMAGE_PID=$!
    trap '[ -n "$IMAGE_PID" ] && kill "$IMAGE_PID" 2>/dev/null; runner_cleanup' EXIT
fi
# image_agent_ready: wait for the background build and take the binary out
# of the image; sets IMAGE_ADD or IMAGE_PROBLEM.
image_agent_ready() {
    if [ -n "$IMAGE_PID" ]; then
        if wait "$IMAGE_PID"; then
            IMAGE_AGENT="$OUT/image-node-agent"
            lvs_image_extract "$LVS_IMAGE_AGENT" "$IMAGE_AGENT" 2>>"$OUT/image-build.log" \
                || IMAGE_PROBLEM="cannot copy $LVS_IMAGE_AGENT out of the image $(cat "$OUT/image-ref"): $(tail -n1 "$OUT/image-build.log")"
        else
            IMAGE_PROBLEM="e2e/image/build.sh failed: $(tail -n1 "$OUT/image-build.log")"
            cat "$OUT/image-build.log" >&2
        fi
        IMAGE_PID=""
    elif [ ! -f "$IMAGE_AGENT" ]; then
        IMAGE_PROBLEM="image node-agent binary $IMAGE_AGENT is not a file"
    fi
    [ -z "$IMAGE_PROBLEM" ] && IMAGE_ADD=(--add-exact "$IMAGE_AGENT:/image$LVS_IMAGE_AGENT"
        --env "LAB_IMAGE_AGENT_SHA256=$(sha256sum "$IMAGE_AGENT" | cut -d' ' -f1)")
}

# The lvs-ipvs examples, when ipvs-* scenarios are selected.
IPVS_PROBLEM=""
if selects 'ipvs-*'; then
    if [ -z "$IPVS_EXAMPLES" ]; then
        IPVS_PROBLEM="$(cargo_build ipvs -p lvs-ipvs --examples)" && IPVS_EXAMPLES="$TARGET_DIR/debug/examples"
    fi
    if [ -z "$IPVS_PROBLEM" ]; then
        for ex in ipvs-dump ipvs-apply; do
            if [ -x "$IPVS_EXAMPLES/$ex" ]; then
                ADD+=(--add "$IPVS_EXAMPLES/$ex:/usr/bin/$ex")
            else
                IPVS_PROBLEM="$IPVS_EXAMPLES/$ex is not an executable file"
            fi
        done
    fi
fi

# The kubectl plugin and the importers' fixtures, when import-* scenarios are
# selected.
PLUGIN_PROBLEM=""
if selects 'import-*'; then
    if [ -z "$PLUGIN" ]; then
        PLUGIN_PROBLEM="$(cargo_build plugin -p lvs-kubectl)" && PLUGIN="$TARGET_DIR/debug/kubectl-lvs"
    fi
    if [ -z "$PLUGIN_PROBLEM" ] && [ ! -x "$PLUGIN" ]; then
        PLUGIN_PROBLEM="kubectl-lvs binary $PLUGIN is not an executable file"
    fi
    [ -z "$PLUGIN_PROBLEM" ] && ADD+=(--add "$PLUGIN:/usr/local/bin/kubectl-lvs"
        --add "$LVS_REPO/plugin/tests/fixtures:/lab/import-fixtures")
    # keepalived itself (Debian's package, its libraries through run-vm.sh),
    # which programs each keepalived fixture for comparison.
    if [ -z "$PLUGIN_PROBLEM" ] && printf '%s\n' "${SELECTED[@]}" | grep -qx import-keepalived-roundtrip; then
        # A subshell: lvs_apt_ensure exits when apt-get fails.
        (lvs_apt_ensure keepalived) >"$OUT/keepalived-install.log" 2>&1
        if [ -x /usr/sbin/keepalived ]; then
            ADD+=(--add "/usr/sbin/keepalived:/usr/local/bin/keepalived")
        else
            PLUGIN_PROBLEM="apt-get install keepalived failed: $(tail -n1 "$OUT/keepalived-install.log")"
        fi
    fi
fi

# Random specs for agent-kernel-accepts-valid-specs, drawn on the host by
# `xtask specgen` and packed into the VM at /lab/specgen.
SPECGEN_SCENARIO=agent-kernel-accepts-valid-specs SPECGEN_PROBLEM=""
if printf '%s\n' "${SELECTED[@]}" | grep -qx "$SPECGEN_SCENARIO" && [ -z "$AGENT_PROBLEM" ]; then
    # shellcheck disable=SC1091
    . "$LVS_CACHE/kernel-lab/current.env"
    # The lab's nodes with their InternalIPs (topology.sh, default networks).
    args=(--out "$OUT/specgen"
        --kernel-modules "$LVS_CACHE/kernel-lab/kernel/$KERNEL_PKG/lib/modules/$KERNEL_VERSION"
        --node dir1=10.0.1.2,2001:db8:1::2 --node dir2=10.0.1.3,2001:db8:1::3
        --node rs1=10.0.1.11,2001:db8:1::11 --node rs2=10.0.1.12,2001:db8:1::12
        --node rs3=10.0.1.13,2001:db8:1::13 --node rs4=10.0.2.14,2001:db8:2::14
        --node rs5=10.0.2.15,2001:db8:2::15)
    [ -n "${LAB_SPECGEN_SEED:-}" ] && args+=(--seed "$LAB_SPECGEN_SEED")
    lvs_log "cargo run -p xtask -- specgen"
    if (cd "$LVS_REPO" && cargo run --locked -q -p xtask -- specgen "${args[@]}") >"$OUT/specgen.log" 2>&1; then
        cp "$OUT/specgen.log" "$OUT/specgen/specgen.log"
        ADD+=(--add "$OUT/specgen:/lab/specgen")
    else
        SPECGEN_PROBLEM="xtask specgen failed: $(grep -m1 -iE '^error' "$OUT/specgen.log" || tail -n1 "$OUT/specgen.log")"
        cat "$OUT/specgen.log" >&2
    fi
fi
IMAGE_RUN=()
for s in "${SELECTED[@]}"; do
    needs_agent "$s" && [ -n "$AGENT_PROBLEM" ] && continue
    [ -n "$(example_problem "$s")" ] && continue
    case "$s" in
        image-*) IMAGE_RUN+=("$s"); continue ;;
        ipvs-*) [ -n "$IPVS_PROBLEM" ] && continue ;;
        import-*) [ -n "$PLUGIN_PROBLEM" ] && continue ;;
    esac
    [ "$s" = "$SPECGEN_SCENARIO" ] && [ -n "$SPECGEN_PROBLEM" ] && continue
    RUN+=("$s")
done

SCEN_TIMEOUT="${LAB_SCENARIO_TIMEOUT:-120}"
# run_vm DIR EXTRA-ADD-ARGS... -- SCENARIOS...: one VM boot for these
# scenarios, its files in DIR; the status of run-vm.sh. Each scenario gets
# SCEN_TIMEOUT, or its own `# lab-timeout: SECS` line when larger
# (guest/suite.sh applies the same rule).
run_vm() {
    local dir="$1" extra=() t own vm_timeout=120
    shift
    while [ "$1" != -- ]; do extra+=("$1"); shift; done
    shift
    for s in "$@"; do
        own="$(sed -n 's/^# lab-timeout: *\([0-9][0-9]*\).*/\1/p' "$HERE/scenarios/$s.sh" | head -n 1)"
        t="$SCEN_TIMEOUT"; [ -n "$own" ] && [ "$own" -gt "$t" ] && t="$own"
        vm_timeout=$(( vm_timeout + t + 5 ))
    done
    "$HERE/run-vm.sh" "${VERBOSE[@]}" --out "$dir" --timeout "$vm_timeout" \
        --env "LAB_SCENARIO_TIMEOUT=$SCEN_TIMEOUT" --env "LAB_AGENT_LOG=${LAB_AGENT_LOG:-info}" \
        "${ADD[@]}" "${extra[@]}" "$HERE/guest/suite.sh" "$@" 2>>"$OUT/run-vm.log"
}
vm_rc=0
if [ "${#RUN[@]}" -gt 0 ]; then
    run_vm "$OUT/vm" -- "${RUN[@]}"
    vm_rc=$?
fi
if [ "${#IMAGE_RUN[@]}" -gt 0 ]; then
    image_agent_ready
    if [ -z "$IMAGE_PROBLEM" ]; then
        run_vm "$OUT/vm-image" "${IMAGE_ADD[@]}" -- "${IMAGE_RUN[@]}"
        rc=$?
        [ "$vm_rc" -ne 0 ] || vm_rc=$rc
        RUN+=("${IMAGE_RUN[@]}")
    fi
fi
t_end="$(lvs_now_ms)"

# Results, in the order the scenarios were selected; each scenario's log is
# in the files of the VM that ran it.
declare -A RESULT=() LOGDIR=()
for vm in "$OUT/vm" "$OUT/vm-image"; do
    [ -f "$vm/channel.log" ] || continue
    while IFS= read -r line; do
        case "$line" in
            "@@RESULT PASS "*) s="${line#@@RESULT PASS }"; RESULT["$s"]=PASS ;;
            "@@RESULT FAIL "*) rest="${line#@@RESULT FAIL }"; s="${rest%%: *}"; RESULT["$s"]="FAIL ${rest#*: }" ;;
            *) continue ;;
        esac
        LOGDIR["$s"]="$vm/files/logs"
    done < <(tr -d '\r' <"$vm/channel.log")
done
vm_note_shown=0
for s in "${SELECTED[@]}"; do
    if needs_agent "$s" && [ -n "$AGENT_PROBLEM" ]; then failed "$s" "$AGENT_PROBLEM"; continue; fi
    why="$(example_problem "$s")"
    if [ -n "$why" ]; then failed "$s" "$why"; continue; fi
    case "$s" in
        image-*) if [ -n "$IMAGE_PROBLEM" ]; then failed "$s" "$IMAGE_PROBLEM"; continue; fi ;;
        ipvs-*) if [ -n "$IPVS_PROBLEM" ]; then failed "$s" "$IPVS_PROBLEM"; continue; fi ;;
        import-*) if [ -n "$PLUGIN_PROBLEM" ]; then failed "$s" "$PLUGIN_PROBLEM"; continue; fi ;;
    esac
    if [ "$s" = "$SPECGEN_SCENARIO" ] && [ -n "$SPECGEN_PROBLEM" ]; then
        failed "$s" "$SPECGEN_PROBLEM"; continue
    fi
    log="${LOGDIR[$s]:-$OUT/vm/files/logs}/$s.log"
    grep '^summary: ' "$log" 2>/dev/null | sed "s/^summary: /$s: /" >&2
    r="${RESULT[$s]:-}"
    if [ "$r" = PASS ]; then
        pass "$s"
        continue
    fi
    if [ -n "$r" ]; then
        failed "$s" "${r#FAIL }"
    else
        failed "$s" "no result from the VM (run-vm.sh exit $vm_rc: $(tail -n1 "$OUT/run-vm.log" 2>/dev/null))"
    fi
    {
        echo "----- $s: scenario output -----"
        if [ -f "$log" ]; then
            sed 's/^/    /' "$log"
        elif [ "$vm_note_shown" -eq 0 ] && [ -f "$OUT/vm/console.log" ]; then
            echo "    (no log came back; last console lines)"
            tail -n 40 "$OUT/vm/console.log" | sed 's/^/    /'
            vm_note_shown=1
        fi
        echo "----- end of $s -----"
    } >&2
done

# The VM runner must have ended cleanly whenever every scenario passed
# (the guest reports 1 when one failed).
if [ "${#RUN[@]}" -gt 0 ] && [ "$vm_rc" -ne 0 ] && [ "$(runner_count FAIL)" -eq 0 ]; then
    failed lab-vm "run-vm.sh exited with status $vm_rc although every scenario passed"
    cat "$OUT/run-vm.log" >&2
fi
boot="$(sed -n 's/^guest_boot_s=//p' "$OUT/vm/timing" 2>/dev/null)"
lvs_log "suite: setup $(( (t_setup - t_start) / 1000 ))s, VM $(( (t_end - t_setup) / 1000 ))s (kernel up at init ${boot:-?}s), total $(( (t_end - t_start) / 1000 ))s; files in $OUT"
summary
