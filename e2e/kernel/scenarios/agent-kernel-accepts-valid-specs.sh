# Everything the validator admits, the kernel accepts. run-suite.sh draws
# random VirtualService/RealServer specs on the host (`xtask specgen`: every
# field, every enum value, edge values and values just outside them), keeps
# what the Rust validator admits and packs it into /lab/specgen. Here the
# agent on dir1 programs all of it in one sync (--once); the kernel must
# refuse nothing, and the table must hold every service and destination.
# Some selectors pick dir2 as well, so dir1 runs as the active director of
# every VIP (--ha-default-role active); without a role it would refuse them.
# Rerun a draw with LAB_SPECGEN_SEED=<seed> (the seed is printed below).
. /lab/scenario.sh
SPECS=/lab/specgen
[ -f "$SPECS/summary.env" ] && [ -f "$SPECS/specs.yaml" ] \
    || fail "no generated specs in $SPECS (run-suite.sh runs xtask specgen for this scenario)"
. "$SPECS/summary.env"
echo "summary: specgen seed $SPECGEN_SEED; schedulers left out: ${SPECGEN_EXCLUDED_SCHEDULERS:-none} (not in this kernel)"
[ -f "$SPECS/specgen.log" ] && sed 's/^/    /' "$SPECS/specgen.log"
[ "$((SPECGEN_VALID_VS + SPECGEN_VALID_RS))" -ge 500 ] \
    || fail "only $((SPECGEN_VALID_VS + SPECGEN_VALID_RS)) valid specs were drawn (seed $SPECGEN_SEED); at least 500 are needed"

agent_lab_up
cp "$SPECS/specs.yaml" "$LAB_MANIFESTS/specs.yaml"
[ -x "$LAB_AGENT_BIN" ] || fail "node agent binary $LAB_AGENT_BIN is missing in the VM"
logs="$(_agent_logs)"
mkdir -p "$logs" /run/lab/state/dir1
report="$logs/once.json"
t0="$(cut -d' ' -f1 /proc/uptime)"
env RUST_LOG="$LAB_AGENT_LOG" NO_COLOR=1 /usr/sbin/ip netns exec dir1 "$LAB_AGENT_BIN" --once \
    --config-dir "$LAB_MANIFESTS" --node-name dir1 --state-dir /run/lab/state/dir1 --ha-default-role active \
    >"$report" 2>"$logs/dir1.log"
rc=$?
t1="$(cut -d' ' -f1 /proc/uptime)"
echo "agent --once on dir1: exit $rc in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
[ -s "$report" ] || fail "agent --once printed no report (exit $rc; last log line: $(tail -n 1 "$logs/dir1.log"))"

# The report's errors: {"kind":"kernel","owner":"default/gen-0001","message":"..."}.
kernel="$(grep -o '"kind":"kernel"' "$report" | wc -l)"
errors="$(grep -o '"kind":"[a-z_]*"' "$report" | wc -l)"
# Counted from /proc/net/ip_vs: Debian's ipvsadm 1.31 segfaults listing
# some of these tables (-Sn and -Ln alike).
nsx dir1 cat /proc/net/ip_vs >"$logs/ip_vs.txt" || fail "cannot read /proc/net/ip_vs in dir1"
services="$(grep -cE '^(TCP|UDP|SCTP|FWM) ' "$logs/ip_vs.txt")"
dests="$(grep -cE '^  -> [0-9A-F[]' "$logs/ip_vs.txt")"
unprogrammed="$(grep -o '"programmed":false' "$report" | wc -l)"
echo "summary: tried $SPECGEN_TRIED specs ($SPECGEN_TRIED_VS VirtualServices, $SPECGEN_TRIED_RS RealServers);" \
    "the validator refused $SPECGEN_REFUSED ($SPECGEN_REFUSED_VS VirtualServices, $SPECGEN_REFUSED_RS RealServers," \
    "$SPECGEN_REFUSED_PAIR RealServer/service pairs); the kernel refused $kernel of" \
    "$SPECGEN_VALID_VS VirtualServices and $SPECGEN_VALID_RS RealServers"
echo "kernel table: $services services (want $SPECGEN_EXPECT_SERVICES), $dests destinations (want $SPECGEN_EXPECT_DESTS)"
if [ "$errors" -gt 0 ]; then
    echo "errors in the report (first 20):"
    grep -o '{"kind":"[a-z_]*"[^}]*}' "$report" | head -n 20
fi
[ "$kernel" -eq 0 ] || fail "the kernel refused $kernel valid specs (seed $SPECGEN_SEED): $(grep -o '"kind":"kernel"[^}]*}' "$report" | head -n 1)"
[ "$errors" -eq 0 ] || fail "the agent reported $errors errors (seed $SPECGEN_SEED): $(grep -o '{"kind":"[a-z_]*"[^}]*}' "$report" | head -n 1)"
[ "$rc" -eq 0 ] || fail "agent --once exited with status $rc (seed $SPECGEN_SEED)"
[ "$unprogrammed" -eq 0 ] || fail "$unprogrammed VirtualServices are not programmed (seed $SPECGEN_SEED)"
expect_eq "IPVS services on dir1" "$SPECGEN_EXPECT_SERVICES" "$services"
expect_eq "IPVS destinations on dir1" "$SPECGEN_EXPECT_DESTS" "$dests"
# Source-NATed services: one masquerade rule each in the agent's table.
[ "${SPECGEN_EXPECT_SNAT:-0}" -gt 0 ] || fail "no source-NATed service was drawn (seed $SPECGEN_SEED)"
snat="$(nsx dir1 nft list table inet lvs-operator 2>/dev/null | grep -c masquerade)"
expect_eq "masquerade rules on dir1" "${SPECGEN_EXPECT_SNAT:-0}" "$snat"

# A second sync over the same specs must find the kernel as it was written:
# anything it rewrites is a value the kernel did not keep.
env RUST_LOG=warn NO_COLOR=1 /usr/sbin/ip netns exec dir1 "$LAB_AGENT_BIN" --once \
    --config-dir "$LAB_MANIFESTS" --node-name dir1 --state-dir /run/lab/state/dir1 --ha-default-role active \
    >"$logs/once-again.json" 2>>"$logs/dir1.log" \
    || fail "the second agent --once exited with status $? (seed $SPECGEN_SEED)"
ops="$(sed -n 's/.*"ops":{\([^}]*\)}.*/\1/p' "$logs/once-again.json")"
[ -z "$ops" ] || fail "the second sync changed the kernel again ($ops; seed $SPECGEN_SEED): a value the kernel did not keep"
echo "ok: a second sync found nothing to change"
