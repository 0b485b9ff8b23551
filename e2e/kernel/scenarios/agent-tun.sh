# IP tunnelling driven by the node agents: RealServers rs4, rs5 by nodeName in
# the remote subnet; their agents put the VIP on an ipip device and relax
# rp_filter; the director encapsulates; replies bypass it (OutPkts 0).
. /lab/scenario.sh
VIP=203.0.113.30
agent_lab_up
# Hardened hosts filter strictly; the agent has to relax it for the tunnel.
for r in rs4 rs5; do
    nsx "$r" sysctl -q -w net.ipv4.conf.all.rp_filter=1 net.ipv4.conf.default.rp_filter=1 net.ipv4.conf.eth0.rp_filter=1
done
manifest_write web-tun <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata:
  name: web-tun
  namespace: default
spec:
  address: 203.0.113.30
  port: 80
  protocol: TCP
  scheduler: rr
  forwarding: TUN
  tunnel:
    type: ipip
  directors:
    nodeSelector:
      matchLabels:
        lvs.lvs-operator.io/director: "true"
  realServerSelector:
    matchLabels:
      app: web-tun
YAML
for i in 4 5; do
manifest_write "web-tun-rs$i" <<YAML
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata:
  name: web-tun-rs$i
  namespace: default
  labels:
    app: web-tun
spec:
  nodeName: rs$i
YAML
done
for n in dir1 rs4 rs5; do agent_start "$n"; done
ipvs_expect dir1 30 <<'RULES'
-A -t 203.0.113.30:80 -s rr
-a -t 203.0.113.30:80 -r 10.0.2.14:80 -i -w 1 --tun-type ipip
-a -t 203.0.113.30:80 -r 10.0.2.15:80 -i -w 1 --tun-type ipip
RULES
for r in rs4 rs5; do
    wait_until 15 addr_held "$r" "$VIP" || true
    dev="$(addr_dev "$r" "$VIP")"
    [ -n "$dev" ] || fail "$r does not hold $VIP"
    /usr/sbin/ip -n "$r" -d link show dev "$dev" | grep -q 'ipip' \
        || fail "$r holds $VIP on $dev, which is not an ipip device: $(/usr/sbin/ip -n "$r" -d link show dev "$dev")"
    rpf="$(sysctl_effective "$r" "$dev" rp_filter)"
    [ "$rpf" != 1 ] || fail "rp_filter on $r $dev is still strict (max of all and $dev = 1)"
    echo "ok: effective rp_filter on $r $dev = $rpf"
    echo "ok: $r holds $VIP on ipip device $dev"
done
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"

fetch_dist 20 "http://$VIP/"
expect_no_errors
for r in rs4 rs5; do expect_eq "requests answered by $r (rr)" 10 "$(dist_of "$r")"; done
ipvs_wait_conns dir1 -t "$VIP:80" 20
expect_eq "director OutPkts (replies bypass it)" 0 "$(ipvs_svc_stat dir1 -t "$VIP:80" outpkts)"
