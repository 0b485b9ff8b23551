# A destination's forwarding method changes in place: NAT -> DR -> TUN -> NAT,
# one SET_DEST each (`node-agent --once` reports exactly one dest_update), and
# the next full read finds nothing to do. Also the --once exit status: 1 on a
# broken manifest (nothing changed) and 1 on a collision with a foreign
# service (which stays untouched, its VIP not taken).
. /lab/scenario.sh
M="$LAB_MANIFESTS"
# once NODE: one reconcile on NODE with `node-agent --once`; the JSON report
# goes to $ONCE_OUT and the exit status to $ONCE_RC.
once() {
    mkdir -p "$(_agent_logs)" "/run/lab/state/$1"
    ONCE_OUT="$(RUST_LOG="$LAB_AGENT_LOG" NO_COLOR=1 /usr/sbin/ip netns exec "$1" "$LAB_AGENT_BIN" --once \
        --config-dir "$M" --node-name "$1" --state-dir "/run/lab/state/$1" 2>>"$(_agent_logs)/$1.log")"
    ONCE_RC=$?
    echo "once $1 (exit $ONCE_RC): $ONCE_OUT"
}
# once_ok NODE OPS: a clean run whose "ops" object is exactly OPS.
once_ok() {
    once "$1"
    [ "$ONCE_RC" = 0 ] || fail "node-agent --once on $1 exited $ONCE_RC: $ONCE_OUT"
    case "$ONCE_OUT" in
        *"\"ops\":$2,"*) ;;
        *) fail "on $1 expected ops $2, got: $ONCE_OUT" ;;
    esac
}
# vs NAME VIP PORT FWD: a VirtualService directed by dir1.
vs() {
manifest_write "$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: $1, namespace: default}
spec:
  address: "$2"
  port: $3
  scheduler: rr
  forwarding: $4
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: $1}}
YAML
}
# rs_addr NAME APP ADDR PORT [FWD]: a RealServer by address.
rs_addr() {
manifest_write "$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: $1, namespace: default, labels: {app: $2}}
spec: {address: $3, port: $4${5:+, forwarding: $5}}
YAML
}
# rule_line NODE PATTERN: the `ipvsadm -Sn` line of NODE matching PATTERN.
rule_line() { ipvs_rules "$1" | grep -- "$2"; }
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
vs web 203.0.113.10 80 NAT
rs_addr web-1 web 10.0.1.11 80
rs_addr web-2 web 10.0.1.12 80
# sysctl_set: expire_nodest_conn, expire_quiescent_template, conntrack
# (ip_forward is on already).
once_ok dir1 '{"addr_add":1,"dest_add":2,"service_add":1,"sysctl_set":3}'
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
grep -q 'broken.yaml' "$(_agent_logs)/dir1.log" || fail "the broken file is not named in the log"
rm -f "$M/broken.yaml"
expect_eq "rules after the broken read" 3 "$(ipvs_rules dir1 | grep -c 203.0.113.10)"

ipvs dir1 -A -t 203.0.113.11:80 -s wlc || fail "cannot add the foreign service"
vs other 203.0.113.11 80 NAT
rs_addr other-1 other 10.0.1.13 80
once dir1
expect_eq "exit status with a foreign collision" 1 "$ONCE_RC"
case "$ONCE_OUT" in *foreign_service*) ;; *) fail "no foreign_service error: $ONCE_OUT" ;; esac
# The VIP goes with the service: a VIP whose service is foreign is not held.
expect_no_vip dir1 203.0.113.11
manifest_remove other; manifest_remove other-1
once_ok dir1 '{}'
expect_eq "foreign service" "-A -t 203.0.113.11:80 -s wlc" "$(ipvs_rules dir1 | grep 203.0.113.11)"
