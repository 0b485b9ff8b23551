# SET_DEST changes a destination's forwarding method in place: NAT -> DR ->
# TUN -> NAT, one request each, and the next full read finds nothing to do.
# Also: --once exit codes for a broken file and for a foreign collision.
. /lab/scenario.sh
. /lab/agent-lab-common.sh
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
vs web 203.0.113.10 80 NAT
rs_addr web-1 web 10.0.1.11 80
rs_addr web-2 web 10.0.1.12 80
once_ok dir1 '{"addr_add":1,"dest_add":2,"service_add":1,"sysctl_set":2}'
once_ok dir1 '{}'
for step in "DR:-g" "TUN:-i" ":-m"; do
    fwd="${step%%:*}"; flag="${step#*:}"
    rs_addr web-2 web 10.0.1.12 80 "$fwd"
    once_ok dir1 '{"dest_update":1}'
    rule_line dir1 '10.0.1.12:80' | grep -q -- " $flag " \
        || fail "after switching to ${fwd:-NAT}: $(rule_line dir1 10.0.1.12:80)"
    once_ok dir1 '{}'
    echo "ok: ${fwd:-NAT} in place ($flag)"
done
fetch_dist 10 "http://203.0.113.10/"
expect_no_errors

echo "kind: [" >"$M/broken.yaml"
once dir1
expect_eq "exit status with a broken file" 1 "$ONCE_RC"
grep -q 'broken.yaml' "/out/once-dir1.log" || fail "the broken file is not named in the log"
rm -f "$M/broken.yaml"
expect_eq "rules after the broken read" 3 "$(ipvs_rules dir1 | grep -c 203.0.113.10)"

ipvs dir1 -A -t 203.0.113.11:80 -s wlc || fail "cannot add the foreign service"
vs other 203.0.113.11 80 NAT
rs_addr other-1 other 10.0.1.13 80
once dir1
expect_eq "exit status with a foreign collision" 1 "$ONCE_RC"
case "$ONCE_OUT" in *foreign_service*) ;; *) fail "no foreign_service error: $ONCE_OUT" ;; esac
manifest_remove other; manifest_remove other-1
once_ok dir1 '{"addr_del":1}'
expect_eq "foreign service" "-A -t 203.0.113.11:80 -s wlc" "$(ipvs_rules dir1 | grep 203.0.113.11)"
