# The keepalived importer, for every fixture in
# plugin/tests/fixtures/keepalived (packed as /lab/import-fixtures), against
# keepalived itself (Debian's package, packed by run-suite.sh):
#  1. keepalived (checker process only) programs the fixture on dir1, knowing
#     every keyword in it; its table must equal <name>.ipvsadm beside the
#     fixture, the rules written from keepalived's documentation (so the file
#     and keepalived agree);
#  2. keepalived stops and removes its rules;
#  3. `kubectl-lvs import keepalived` writes the objects, the standalone agent
#     on dir1 applies them, and dir1's `ipvsadm -Sn` must equal what
#     keepalived programmed.
# Health checks (keepalived's and the agent's) probe rs1-rs5, which serve HTTP
# on :80 and TCP on :9000, so every realserver is up. The fixtures cover NAT,
# DR, TUN with GUE, per-realserver methods, groups with address ranges and a
# fwmark, persistence with granularity, IPv6, sorry servers, thresholds and
# HTTP/TCP/script checks. What keepalived does that the API does not (a sorry
# server kept at weight 0 with sorry_server_inhibit, for one) is left to the
# unit tests' report fixtures.
# lab-needs: agent
# lab-timeout: 300
. /lab/scenario.sh
FIX=/lab/import-fixtures/keepalived
ls "$FIX"/*.conf >/dev/null 2>&1 || fail "no keepalived fixtures in $FIX (run-suite.sh packs plugin/tests/fixtures)"
command -v keepalived >/dev/null || fail "keepalived is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
trap 'kill -KILL "${KEEPALIVED_PID:-}" 2>/dev/null' EXIT
agent_lab_up
# The script of the fixtures' MISC_CHECK: healthy.
mkdir -p /usr/local/bin && printf '#!/bin/sh\nexit 0\n' >/usr/local/bin/check-web.sh && chmod +x /usr/local/bin/check-web.sh
mkdir -p /out/keepalived
n=0
for f in "$FIX"/*.conf; do
    name="$(basename "$f" .conf)"
    [ -f "$FIX/$name.ipvsadm" ] || fail "keepalived fixture $name.conf has no $name.ipvsadm with the rules keepalived programs"
    # 1. keepalived programs it.
    keepalived_start dir1 "$f" "/out/keepalived/$name.log"
    if ! ipvs_expect_quiet dir1 60 <"$FIX/$name.ipvsadm"; then
        echo "keepalived's log for $name.conf:"; tail -n 30 "/out/keepalived/$name.log"
        ipvs_expect dir1 1 <"$FIX/$name.ipvsadm"
    fi
    if grep -q "Unknown keyword" "/out/keepalived/$name.log"; then
        fail "keepalived does not know every keyword of $name.conf: $(grep "Unknown keyword" "/out/keepalived/$name.log" | head -n 3 | tr '\n' ' ')"
    fi
    echo "ok: keepalived programs $name.conf as $name.ipvsadm says"
    nsx dir1 ipvsadm -Sn | LC_ALL=C sort >"/tmp/keepalived.$name"
    # 2. keepalived stops and takes its rules with it.
    keepalived_stop
    ipvs_expect dir1 20 </dev/null
    # 3. The import, applied by the agent (started now, so it never saw
    # keepalived's rules).
    agent_start dir1
    import_apply keepalived "$f"
    ipvs_expect dir1 60 <"/tmp/keepalived.$name"
    echo "compared $name.conf: keepalived's table, $name.ipvsadm and the agent's table after the import are equal ($(grep -c '^-A' "/tmp/keepalived.$name") services, $(grep -c '^-a' "/tmp/keepalived.$name") destinations)"
    import_clear
    agent_alive dir1 || fail "agent on dir1 died"
    agent_stop dir1
    n=$((n + 1))
done
echo "summary: $n keepalived fixtures programmed by keepalived and by the agent from the import, equal"
