#!/usr/bin/env bash
# `make bench`: build the contenders, run every measurement in one kernel-lab
# VM boot, then the Kubernetes-mode parts in joined labs (joined.sh: apply ->
# kernel latency and agent memory with 10k VirtualServices in a real API
# server; failover.sh: director HA takeovers after the active agent is
# killed) and the control plane at scale in the cluster lab (cp.sh: the
# operator with 10k VirtualServices and 50 / 500 simulated agents), and write target/bench/{results.csv,report.md,converge-time-vs-n.png}.
#
#   run.sh [--quick] [--no-agent] [--no-joined] [--joined-only] [--only PARTS]
#          [--out DIR] [-v]
#
#   --quick        small sizes only (a few minutes; for checking the harness)
#   --no-agent     leave the node agent out (and the joined-lab parts)
#   --no-joined    leave the joined-lab parts (joined, failover) out
#   --joined-only  only the joined-lab parts (the report then lacks the rest)
#   --only PARTS   only these parts, comma-separated: kernel (the kernel-lab
#                  VM), joined (joined.sh), failover (failover.sh, a few
#                  minutes on its own), cp (cp.sh, no VM)
#   --out DIR      where the results go (default <repo>/target/bench)
#   -v             stream the VM console to stderr
#
# Environment: LVS_CACHE (cache root), BENCH_CACHE (where the Go tools, the
# plot's venv and the VM run go; default $LVS_CACHE/bench), BENCH_EXTRA (a
# file of extra result lines for report.py), BENCH_JOINED_* (see joined.sh),
# BENCH_FAILOVER_* (see failover.sh), BENCH_CP_* (see cp.sh), BENCH_VM_MEM (MiB, default 4096),
# BENCH_VM_TIMEOUT (s), NODE_AGENT_BIN / NODE_AGENT_MUSL_BIN / LVS_OPERATOR_BIN
# (use these binaries instead of building them), CARGO_TARGET_DIR (where cargo builds; default
# <repo>/target), CARGO_FLAGS (default --locked).
# Exit status: non-zero when a build, the VM, a check or the joined lab failed
# (a joined lab that does not come up is a failure, never a skip). Missed
# performance targets are reported in report.md, never turned into failures.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"

QUICK=0 AGENT=1 JOINED=1 FAILOVER=1 CP=1 KERNEL=1 OUT="$LVS_REPO/target/bench" VERBOSE=()
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1; shift ;;
        --no-agent) AGENT=0; JOINED=0; FAILOVER=0; shift ;;
        --no-joined) JOINED=0; FAILOVER=0; shift ;;
        --joined-only) KERNEL=0; shift ;;
        --only)
            KERNEL=0 JOINED=0 FAILOVER=0 CP=0
            IFS=, read -r -a parts <<<"$2"
            for p in "${parts[@]}"; do
                case "$p" in
                    kernel) KERNEL=1 ;;
                    joined) JOINED=1 ;;
                    failover) FAILOVER=1 ;;
                    cp) CP=1 ;;
                    *) echo "unknown part '$p' in --only (expected kernel, joined, failover, cp)" >&2; exit 2 ;;
                esac
            done
            shift 2 ;;
        --out) OUT="$2"; shift 2 ;;
        -v|--verbose) VERBOSE=(-v); shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
lvs_need_root
t_start="$(lvs_now_ms)"
CACHE="${BENCH_CACHE:-$LVS_CACHE/bench}"
export BENCH_CACHE="$CACHE"
TARGET="${CARGO_TARGET_DIR:-$LVS_REPO/target}"
mkdir -p "$CACHE" "$OUT"

# --- sizes -----------------------------------------------------------------------------
# Each BENCH_* variable set in the environment overrides the preset.
ALL_CONTENDERS="ipvsadm go-ipvs lib-batch1 lib-batch16 lib-batch64 lib-batch256"
if [ "$QUICK" -eq 1 ]; then
    PRESET=(BENCH_CONVERGE="500x1 500x10 2000x10" BENCH_READ="1000x4 2000x1 50x50"
        BENCH_CHANGE="500 2000" BENCH_AGENT_CHANGE="500 2000" BENCH_RSS="500 2000" BENCH_RESYNC="500x10"
        BENCH_STRESS_POOL=5000 BENCH_STRESS_N=100 BENCH_REPEAT=2 BENCH_PERIODIC=2 BENCH_RESYNC_CHANGES=4
        BENCH_AGENT_MAX_N=2000 BENCH_AGENT_MAX_RS=5000 BENCH_CHECK_IPVSADM_MAX=1000 BENCH_CHANGE_CAPTURE=1
        BENCH_HEALTH="100x10" BENCH_HEALTH_WINDOW=10
        BENCH_CONTENDERS="$ALL_CONTENDERS")
    TIMEOUT="${BENCH_VM_TIMEOUT:-900}"
else
    # Every size of the issue, the agent's included (it re-plans only what a
    # change touches, so its sizes are no longer capped).
    PRESET=(BENCH_CONVERGE="1000x1 1000x10 5000x1 5000x10 20000x1 20000x10"
        BENCH_READ="1000x4 2000x2 8000x2 16000x1 100x100"
        BENCH_CHANGE="1000 20000" BENCH_AGENT_CHANGE="1000 20000" BENCH_RSS="1000 10000 20000"
        BENCH_RESYNC="20000x10" BENCH_STRESS_POOL=100000 BENCH_STRESS_N=100 BENCH_REPEAT=3
        BENCH_READ_REPEAT=2 BENCH_CHECK_IPVSADM_MAX=1000 BENCH_CHANGE_CAPTURE=1 BENCH_READ_GOIPVS_MAX=8000
        BENCH_PERIODIC=1 BENCH_RESYNC_CHANGES=10 BENCH_AGENT_MAX_N=20000 BENCH_AGENT_MAX_RS=100000
        BENCH_HEALTH="1000x10" BENCH_HEALTH_WINDOW=30
        BENCH_CONTENDERS="$ALL_CONTENDERS")
    TIMEOUT="${BENCH_VM_TIMEOUT:-3600}"
fi
SIZES=()
for kv in "${PRESET[@]}"; do
    name="${kv%%=*}"
    SIZES+=("$name=${!name-${kv#*=}}")
done

# --- builds ------------------------------------------------------------------------------
LABS=0  # a joined-lab part runs
{ [ "$JOINED" -eq 1 ] || [ "$FAILOVER" -eq 1 ]; } && LABS=1
PKGS=()
[ "$KERNEL" -eq 1 ] && PKGS+=(-p lvs-bench)
AGENT_BIN="${NODE_AGENT_BIN:-}"
# The agent runs in the kernel-lab VM and in the joined labs (not in cp.sh).
NEED_AGENT=0
{ { [ "$AGENT" -eq 1 ] && [ "$KERNEL" -eq 1 ]; } || [ "$LABS" -eq 1 ]; } && NEED_AGENT=1
if [ -z "$AGENT_BIN" ] && [ "$NEED_AGENT" -eq 1 ]; then
    PKGS+=(-p lvs-node-agent)
    AGENT_BIN="$TARGET/release/node-agent"
fi
OPERATOR_BIN="${LVS_OPERATOR_BIN:-}"
if { [ "$LABS" -eq 1 ] || [ "$CP" -eq 1 ]; } && [ -z "$OPERATOR_BIN" ]; then
    PKGS+=(-p lvs-operator)
    OPERATOR_BIN="$TARGET/release/lvs-operator"
fi
GO="${GO:-/usr/local/go/bin/go}"
[ -x "$GO" ] || GO="$(command -v go || true)"
[ -n "$GO" ] || lvs_die "no Go toolchain (expected /usr/local/go/bin/go)"
export GO
PY="$CACHE/venv/bin/python"
# Without the kernel-lab part there is no plot: any python3 writes the report.
[ "$KERNEL" -eq 0 ] && ! [ -x "$PY" ] && PY=python3

# The Go tools and the plot's matplotlib are built while cargo builds (a
# clean clone spends about a minute linking the cluster lab's binaries; the
# Rust build leaves the cores idle at times). Nothing is measured meanwhile.
side_builds() {
    if [ "$KERNEL" -eq 1 ]; then
        echo "goipvs (github.com/cloudflare/ipvs, static)"
        (cd "$HERE/goipvs" && CGO_ENABLED=0 "$GO" build -trimpath -o "$CACHE/goipvs" .) \
            || { echo "go build of e2e/bench/goipvs failed"; return 1; }
        if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
            echo "matplotlib into $CACHE/venv"
            python3 -m venv "$CACHE/venv" || { lvs_apt_ensure python3-venv; python3 -m venv "$CACHE/venv"; } \
                || { echo "python3 -m venv failed"; return 1; }
            "$CACHE/venv/bin/pip" install -q matplotlib || { echo "pip install matplotlib failed"; return 1; }
        fi
    fi
    if [ "$LABS" -eq 1 ] || [ "$CP" -eq 1 ]; then
        echo "the cluster lab's tools (etcd, kube-apiserver, kubectl, helm; cached after the first build)"
        "$LVS_REPO/e2e/cluster/build-tools.sh" || { echo "e2e/cluster/build-tools.sh failed"; return 1; }
        echo "joinedbench (Go, static)"
        (cd "$HERE/joinedbench" && GOTOOLCHAIN=local CGO_ENABLED=0 "$GO" build -trimpath -ldflags '-s -w' \
            -o "$CACHE/joinedbench" .) || { echo "go build of e2e/bench/joinedbench failed"; return 1; }
    fi
}
lvs_log "bench: alongside: Go tools and matplotlib (log: $CACHE/side.log)"
side_builds >"$CACHE/side.log" 2>&1 &
SIDE_PID=$!

if [ "${#PKGS[@]}" -gt 0 ]; then
    lvs_log "bench: cargo build --release ${PKGS[*]}"
    # shellcheck disable=SC2086
    (cd "$LVS_REPO" && cargo build --release ${CARGO_FLAGS---locked} "${PKGS[@]}") >"$CACHE/cargo.log" 2>&1 \
        || { tail -n 30 "$CACHE/cargo.log" >&2; kill "$SIDE_PID" 2>/dev/null; lvs_die "cargo build failed (log: $CACHE/cargo.log)"; }
fi
if [ "$CP" -eq 1 ]; then
    # The simulation is an example of the operator crate: a target selection
    # of its own, so it builds apart from the packages above.
    lvs_log "bench: cargo build --release -p lvs-operator --example cp_sim"
    # shellcheck disable=SC2086
    (cd "$LVS_REPO" && cargo build --release ${CARGO_FLAGS---locked} -p lvs-operator --example cp_sim) >>"$CACHE/cargo.log" 2>&1 \
        || { tail -n 30 "$CACHE/cargo.log" >&2; kill "$SIDE_PID" 2>/dev/null; lvs_die "cargo build of the cp simulation failed (log: $CACHE/cargo.log)"; }
fi
if [ "$NEED_AGENT" -eq 1 ]; then
    [ -x "$AGENT_BIN" ] || lvs_die "node-agent binary $AGENT_BIN is not an executable file"
fi
# The static musl build the Dockerfile ships (contender agent-musl: its
# memory, with musl's allocator). ring compiles C: musl-gcc when installed,
# else the host's gcc (ring's C needs no libc headers beyond the compiler's).
AGENT_MUSL_BIN="${NODE_AGENT_MUSL_BIN:-}"
if [ -z "$AGENT_MUSL_BIN" ] && [ "$AGENT" -eq 1 ] && [ "$KERNEL" -eq 1 ]; then
    MUSL=x86_64-unknown-linux-musl
    lvs_log "bench: cargo build --release --target $MUSL -p lvs-node-agent"
    if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$MUSL"; then
        lvs_log "bench: rustup target add $MUSL"
        rustup target add "$MUSL" >>"$CACHE/cargo.log" 2>&1 \
            || { kill "$SIDE_PID" 2>/dev/null; lvs_die "rustup target add $MUSL failed (log: $CACHE/cargo.log)"; }
    fi
    cc_musl="${CC_x86_64_unknown_linux_musl:-$(command -v musl-gcc || echo gcc)}"
    # shellcheck disable=SC2086
    (cd "$LVS_REPO" && CC_x86_64_unknown_linux_musl="$cc_musl" \
        cargo build --release ${CARGO_FLAGS---locked} --target "$MUSL" -p lvs-node-agent --bin node-agent) >>"$CACHE/cargo.log" 2>&1 \
        || { tail -n 30 "$CACHE/cargo.log" >&2; kill "$SIDE_PID" 2>/dev/null; lvs_die "cargo build of the musl node-agent failed (rustup target add $MUSL; log: $CACHE/cargo.log)"; }
    AGENT_MUSL_BIN="$TARGET/$MUSL/release/node-agent"
fi

if ! wait "$SIDE_PID"; then
    tail -n 30 "$CACHE/side.log" >&2
    lvs_die "a build alongside cargo failed: $(tail -n 1 "$CACHE/side.log") (log: $CACHE/side.log)"
fi
lvs_log "bench: the builds alongside cargo are done"

# --- the VM ----------------------------------------------------------------------------------
RUN="$CACHE/run"
# Other qemu VMs on this machine share its 2 cores with the benchmark VM.
other_vms() { pgrep -c -f '^qemu-system-x86_64 ' || true; }
vm_rc=0
if [ "$KERNEL" -eq 1 ]; then
    LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)" VMS_BEFORE="$(other_vms)"
    [ "$VMS_BEFORE" -eq 0 ] || lvs_log "bench: warning: $VMS_BEFORE other qemu VM(s) running; they compete for the CPUs"
    ENVS=()
    for s in "${SIZES[@]}"; do ENVS+=(--env "$s"); done
    ENVS+=(--env "BENCH_AGENT=$AGENT")
    lvs_log "bench: running the suite in the kernel lab VM (timeout ${TIMEOUT}s)"
    set +e
    "$LVS_REPO/e2e/kernel/run-vm.sh" "${VERBOSE[@]}" --out "$RUN" --mem "${BENCH_VM_MEM:-4096}" --timeout "$TIMEOUT" \
        --add "$TARGET/release/lvs-bench:/usr/local/bin/lvs-bench" \
        ${AGENT_BIN:+--add "$AGENT_BIN:/usr/local/bin/node-agent"} \
        ${AGENT_MUSL_BIN:+--add "$AGENT_MUSL_BIN:/usr/local/bin/node-agent-musl"} \
        --add "$CACHE/goipvs:/usr/local/bin/goipvs" \
        "${ENVS[@]}" "$HERE/guest.sh"
    vm_rc=$?
    set -e
    rm -rf "$OUT/logs"
    if [ -f "$RUN/files/raw.txt" ]; then
        cp "$RUN/files/raw.txt" "$OUT/raw.txt"
    else
        # The VM ended early (timeout, crash): every result line was also logged
        # on the console as "[uptime] metric=...".
        tr -d '\r' <"$RUN/console.log" | sed -n 's/^\[ *[0-9.]*\] \(metric=.*\)$/\1/p' >"$OUT/raw.txt"
        [ -s "$OUT/raw.txt" ] || lvs_die "the VM produced no results (run-vm.sh exit $vm_rc; console: $RUN/console.log)"
        lvs_log "bench: the VM ended early (run-vm.sh exit $vm_rc); reporting the $(wc -l <"$OUT/raw.txt") results it logged"
    fi
    {
        echo "metric=host load_before=\"$LOAD_BEFORE\" load_after=\"$(cut -d' ' -f1-3 /proc/loadavg)\" other_vms_before=$VMS_BEFORE other_vms_after=$(other_vms) vm_rc=$vm_rc"
    } >>"$OUT/raw.txt"
    [ -d "$RUN/files/logs" ] && cp -r "$RUN/files/logs" "$OUT/logs"
else
    # --joined-only / --only without kernel: no kernel-lab results in this report.
    rm -rf "$OUT/logs"
    echo "metric=done what=no_kernel_part" >"$OUT/raw.txt"
fi

# --- the joined lab (Kubernetes mode) ---------------------------------------------------------
joined_rc=0
JOINED_RAW="$OUT/joined-raw.txt"
rm -f "$JOINED_RAW"
if [ "$JOINED" -eq 1 ]; then
    QJ=()
    [ "$QUICK" -eq 1 ] && QJ=(--quick)
    lvs_log "bench: the joined lab (Kubernetes mode, apply -> kernel latency, agent memory)"
    t_j="$(lvs_now_ms)"
    BENCH_JOINEDBENCH_BUILT=1 NODE_AGENT_BIN="$AGENT_BIN" LVS_OPERATOR_BIN="$OPERATOR_BIN" "$HERE/joined.sh" "${QJ[@]}" --out "$OUT" || joined_rc=$?
    lvs_log "bench: joined part: $(( ($(lvs_now_ms) - t_j) / 1000 ))s (exit $joined_rc)"
    if [ "$joined_rc" -ne 0 ]; then
        echo "metric=problem what=\"joined lab part failed (exit $joined_rc): see the joined.sh messages above and $OUT/joined/\"" >>"$OUT/raw.txt"
    fi
fi

# --- director HA takeovers (a joined lab of its own) -------------------------------------------
failover_rc=0
FAILOVER_RAW="$OUT/failover-raw.txt"
rm -f "$FAILOVER_RAW"
if [ "$FAILOVER" -eq 1 ]; then
    lvs_log "bench: director HA failover (joined lab, kill -9 of the active agent, ${BENCH_FAILOVER_ROUNDS:-10} takeovers)"
    t_f="$(lvs_now_ms)"
    BENCH_JOINEDBENCH_BUILT=1 NODE_AGENT_BIN="$AGENT_BIN" LVS_OPERATOR_BIN="$OPERATOR_BIN" "$HERE/failover.sh" --out "$OUT" || failover_rc=$?
    lvs_log "bench: failover part: $(( ($(lvs_now_ms) - t_f) / 1000 ))s (exit $failover_rc)"
    if [ "$failover_rc" -ne 0 ]; then
        echo "metric=problem what=\"failover part failed (exit $failover_rc): see the failover.sh messages above and $OUT/failover/\"" >>"$OUT/raw.txt"
    fi
fi

# --- the control plane at scale (cluster lab, simulated agents) --------------------------------
cp_rc=0
CP_RAW="$OUT/cp-raw.txt"
rm -f "$CP_RAW"
if [ "$CP" -eq 1 ]; then
    QC=()
    [ "$QUICK" -eq 1 ] && QC=(--quick)
    lvs_log "bench: the control plane at scale (cluster lab: the operator, 10k VirtualServices, simulated agents)"
    t_c="$(lvs_now_ms)"
    LVS_OPERATOR_BIN="$OPERATOR_BIN" CP_SIM_BIN="$TARGET/release/examples/cp_sim" "$HERE/cp.sh" "${QC[@]}" --out "$OUT" || cp_rc=$?
    lvs_log "bench: cp part: $(( ($(lvs_now_ms) - t_c) / 1000 ))s (exit $cp_rc)"
    if [ "$cp_rc" -ne 0 ]; then
        echo "metric=problem what=\"control-plane part failed (exit $cp_rc): see the cp.sh messages above and $OUT/cp/\"" >>"$OUT/raw.txt"
    fi
fi

wall_s=$(( ($(lvs_now_ms) - t_start) / 1000 ))
EXTRA=()
[ -n "${BENCH_EXTRA:-}" ] && EXTRA=(--extra "$BENCH_EXTRA")
[ -s "$JOINED_RAW" ] && EXTRA+=(--extra "$JOINED_RAW")
[ -s "$FAILOVER_RAW" ] && EXTRA+=(--extra "$FAILOVER_RAW")
[ -s "$CP_RAW" ] && EXTRA+=(--extra "$CP_RAW")
rep_rc=0
"$PY" "$HERE/report.py" "$OUT/raw.txt" "$OUT" --wall-s "$wall_s" "${EXTRA[@]}" || rep_rc=$?
lvs_log "bench: ${wall_s}s in total; results in $OUT (results.csv, report.md, converge-time-vs-n.png)"
[ "$vm_rc" -eq 0 ] || lvs_die "the guest reported failures (run-vm.sh exit $vm_rc); see $OUT/report.md"
[ "$joined_rc" -eq 0 ] || lvs_die "the joined-lab part failed (joined.sh exit $joined_rc); see the messages above and $OUT/joined/"
[ "$failover_rc" -eq 0 ] || lvs_die "the failover part failed (failover.sh exit $failover_rc); see the messages above and $OUT/failover/"
[ "$cp_rc" -eq 0 ] || lvs_die "the control-plane part failed (cp.sh exit $cp_rc); see the messages above and $OUT/cp/"
exit "$rep_rc"
