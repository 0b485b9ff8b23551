# The ipvsadm importer round trip, for every fixture in
# plugin/tests/fixtures/ipvsadm (packed as /lab/import-fixtures): the rules
# are loaded on dir1 with `ipvsadm -R` and saved with `ipvsadm -Sn`; the table
# is cleared; `kubectl-lvs import ipvsadm` turns the saved text into
# VirtualServices and RealServers, which the standalone agent on dir1
# applies; its `ipvsadm -Sn` must then equal the saved text (line order
# aside). The fixtures cover NAT with port mapping, DR, ipip/GUE/GRE tunnels
# with their checksum options, persistence with netmasks, scheduler flags,
# one-packet scheduling, IPv6, fwmark and SCTP services.
# lab-needs: agent
# lab-timeout: 240
. /lab/scenario.sh
FIX=/lab/import-fixtures/ipvsadm
ls "$FIX"/*.rules >/dev/null 2>&1 || fail "no ipvsadm fixtures in $FIX (run-suite.sh packs plugin/tests/fixtures)"
agent_lab_up
agent_start dir1
n=0
for f in "$FIX"/*.rules; do
    name="$(basename "$f")"
    nsx dir1 ipvsadm -C || fail "ipvsadm -C on dir1"
    nsx dir1 ipvsadm -R <"$f" || fail "ipvsadm -R refused the fixture $name"
    nsx dir1 ipvsadm -Sn >"/tmp/saved.$name" || fail "ipvsadm -Sn on dir1"
    nsx dir1 ipvsadm -C || fail "ipvsadm -C on dir1"
    import_apply ipvsadm "/tmp/saved.$name"
    ipvs_expect dir1 60 <"/tmp/saved.$name"
    echo "compared $name: $(grep -c '^-A' "/tmp/saved.$name") services, $(grep -c '^-a' "/tmp/saved.$name") destinations, ipvsadm -Sn after the agent equals the saved rules"
    import_clear
    n=$((n + 1))
done
agent_alive dir1 || fail "agent on dir1 died"
echo "summary: $n ipvsadm fixtures round-tripped"
