# The keepalived importer, for every fixture in
# plugin/tests/fixtures/keepalived (packed as /lab/import-fixtures):
# `kubectl-lvs import keepalived` writes the objects, the standalone agent on
# dir1 applies them (its health checks probe rs1-rs5, which serve HTTP on :80
# and TCP on :9000), and dir1's `ipvsadm -Sn` must equal the rules keepalived
# would program for that file with every realserver up, kept beside it as
# <name>.ipvsadm. Those files are written by hand from keepalived's documented
# semantics (scheduler wlc, forwarding NAT and weight 1 when unset; the sorry
# server only while the healthy weight is below the quorum); the lab image
# has no keepalived to program them itself. The fixtures cover NAT, DR, TUN
# with GUE, per-realserver methods, groups with address ranges and a fwmark,
# persistence with granularity, IPv6, sorry servers, thresholds and HTTP/TCP
# checks.
# lab-needs: agent
# lab-timeout: 240
. /lab/scenario.sh
FIX=/lab/import-fixtures/keepalived
ls "$FIX"/*.conf >/dev/null 2>&1 || fail "no keepalived fixtures in $FIX (run-suite.sh packs plugin/tests/fixtures)"
agent_lab_up
agent_start dir1
n=0
for f in "$FIX"/*.conf; do
    name="$(basename "$f" .conf)"
    [ -f "$FIX/$name.ipvsadm" ] || fail "keepalived fixture $name.conf has no $name.ipvsadm with the rules keepalived programs"
    import_apply keepalived "$f"
    ipvs_expect dir1 60 <"$FIX/$name.ipvsadm"
    echo "compared $name.conf: ipvsadm -Sn after the agent equals $name.ipvsadm ($(grep -c '^-A' "$FIX/$name.ipvsadm") services, $(grep -c '^-a' "$FIX/$name.ipvsadm") destinations)"
    import_clear
    n=$((n + 1))
done
agent_alive dir1 || fail "agent on dir1 died"
echo "summary: $n keepalived fixtures imported and programmed"
