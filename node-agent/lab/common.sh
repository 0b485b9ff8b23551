# Helpers for the node-agent lab checks (busybox sh, sourced after
# /lab/scenario.sh from e2e/kernel). They drive `node-agent --once`.
# shellcheck shell=sh
M="${LAB_MANIFESTS:-/run/lab/manifests}"

# once NODE: one reconcile on NODE; the JSON report goes to $ONCE_OUT and
# the status to $ONCE_RC.
once() {
    ONCE_OUT="$(/usr/sbin/ip netns exec "$1" node-agent --once --config-dir "$M" \
        --node-name "$1" --state-dir "/run/lab/state/$1" 2>>"/out/once-$1.log")"
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
# vs NAME VIP PORT FWD [EXTRA SPEC LINE]: a VirtualService directed by dir1.
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
$5
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: $1}}
YAML
}
# rs_addr NAME APP ADDR PORT [FWD] / rs_node NAME APP NODE: RealServers.
rs_addr() {
manifest_write "$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: $1, namespace: default, labels: {app: $2}}
spec: {address: $3, port: $4${5:+, forwarding: $5}}
YAML
}
rs_node() {
manifest_write "$1" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: $1, namespace: default, labels: {app: $2}}
spec: {nodeName: $3}
YAML
}
# rule_line NODE PATTERN: the `ipvsadm -Sn` line of NODE matching PATTERN.
rule_line() { ipvs_rules "$1" | grep -- "$2"; }
