# Persistence driven by the node agent, on UDP services (lab-dns on rs1-rs3
# names the server that answered; every query comes from a new source port, so
# each one is a new IPVS connection that rr alone would spread).
#  - p32 (persistence, no prefixLength): one client address sticks to one
#    server over new flows; a second address of the same /24 gets its own
#    server; once the first client's template expires (timeoutSeconds after
#    its last flow), its next flow moves to another server.
#  - p24 (prefixLength 24): three addresses of one /24 share one server, an
#    address of another /24 gets another.
#  - p64 (IPv6, prefixLength 64): likewise for two /64s.
#  - tcp (TCP, HTTP on rs1-rs3): new connections of one client address stick,
#    another address gets another server.
# The director's UDP connection timeout is lowered to 1 s (ipvsadm --set) so
# the flows, which hold the template while they live, end soon after.
# lab-timeout: 150
. /lab/scenario.sh
TIMEOUT=6
VIP32=203.0.113.55 VIP24=203.0.113.56 VIP64=2001:db8:f::56 VIPT=203.0.113.58
command -v lab-dns >/dev/null || fail "lab-dns is missing in the VM (run-suite.sh packs it for $LAB_SCENARIO)"
agent_lab_up
topo_rs_gateway dir1 || fail "cannot route rs1-rs3 via dir1"
dns_serve rs1 rs2 rs3
nsx dir1 ipvsadm --set 0 0 1 || fail "ipvsadm --set 0 0 1 (UDP timeout 1 s) was refused on dir1"

# Client addresses outside the client's own prefixes are routed back by the router.
/usr/sbin/ip -n router route replace 198.51.101.0/24 via 198.51.100.10
/usr/sbin/ip -n router -6 route replace 2001:db8:101::/64 via 2001:db8:100::10

# persist_vs NAME VIP PERSISTENCE [PROTOCOL PORT]: a NAT VirtualService on
# VIP:PORT (default UDP 53), rr, over rs1-rs3 on PORT.
persist_vs() {
    manifest_vs "$1" "$2" "${5:-53}" rr NAT "${4:-UDP}" "persistence: $3"
    for r in rs1 rs2 rs3; do
        case "$2" in
            *:*) manifest_rs "$1-$r" "$1" "{address: \"$(topo_ip6 "$r")\", port: ${5:-53}}" ;;
            *) manifest_rs "$1-$r" "$1" "{address: $(topo_ip4 "$r"), port: ${5:-53}}" ;;
        esac
    done
}
persist_vs p32 "$VIP32" "{timeoutSeconds: $TIMEOUT}"
persist_vs p24 "$VIP24" "{timeoutSeconds: $TIMEOUT, prefixLength: 24}"
persist_vs p64 "$VIP64" "{timeoutSeconds: $TIMEOUT, prefixLength: 64}"
persist_vs tcp "$VIPT" "{timeoutSeconds: $TIMEOUT}" TCP 80
agent_start dir1
ipvs_expect dir1 30 <<RULES
-A -u $VIP32:53 -s rr -p $TIMEOUT
-a -u $VIP32:53 -r 10.0.1.11:53 -m -w 1
-a -u $VIP32:53 -r 10.0.1.12:53 -m -w 1
-a -u $VIP32:53 -r 10.0.1.13:53 -m -w 1
-A -u $VIP24:53 -s rr -p $TIMEOUT -M 255.255.255.0
-a -u $VIP24:53 -r 10.0.1.11:53 -m -w 1
-a -u $VIP24:53 -r 10.0.1.12:53 -m -w 1
-a -u $VIP24:53 -r 10.0.1.13:53 -m -w 1
-A -u [$VIP64]:53 -s rr -p $TIMEOUT -M 64
-a -u [$VIP64]:53 -r [2001:db8:1::11]:53 -m -w 1
-a -u [$VIP64]:53 -r [2001:db8:1::12]:53 -m -w 1
-a -u [$VIP64]:53 -r [2001:db8:1::13]:53 -m -w 1
$(sched_rules "$VIPT:80" rr 80 rs1=1 rs2=1 rs3=1 | sed "1s/\$/ -p $TIMEOUT/")
RULES
wait_until 15 addr_held dir1 "$VIP32" || fail "dir1 does not hold $VIP32"

# client_from ADDR: the client's traffic to the VIPs of ADDR's family leaves
# from ADDR (added to the client's eth0 if missing).
client_from() {
    case "$1" in
        *:*) /usr/sbin/ip -n client addr replace "$1/64" dev eth0 nodad
             /usr/sbin/ip -n client -6 route replace 2001:db8:f::/64 via 2001:db8:100::1 src "$1" ;;
        *) client_source "$1" ;;
    esac
}
# sticky_flows WHAT N VIP: N flows, all answered by one realserver, printed.
sticky_flows() {
    dns_flows "$2" "$3"
    case "$FLOW_SERVERS" in
        rs1|rs2|rs3) echo "ok: $1: $2 flows all answered by $FLOW_SERVERS" ;;
        *) fail "$1: $2 flows answered by '$FLOW_SERVERS', expected one realserver" ;;
    esac
}
# template_of SRC VIP: the director's persistence template for SRC (port 0) on
# VIP:53, as "<destination>" (empty when none).
template_of() { nsx dir1 ipvsadm -Lnc | awk -v s="$1:0" -v v="$2:53" '$4 == s && $5 == v { print $6; exit }'; }
no_template() { [ -z "$(template_of "$1" "$2")" ]; }

# --- p32: a client sticks within the timeout and moves after it ------------------
client_from 198.51.100.10
sticky_flows "198.51.100.10 on p32" 6 "$VIP32"
first="$FLOW_SERVERS"
tmpl="$(template_of 198.51.100.10 "$VIP32")"
expect_eq "p32 template of 198.51.100.10 points at" "$(topo_ip4 "$first"):53" "$tmpl"
client_from 198.51.100.21
sticky_flows "198.51.100.21 on p32" 4 "$VIP32"
[ "$FLOW_SERVERS" != "$first" ] || fail "198.51.100.21 shares $first with 198.51.100.10 on p32: without prefixLength each address must be its own group (rr gives the next server)"
client_from 198.51.100.10
sticky_flows "198.51.100.10 on p32, back after another client" 2 "$VIP32"
expect_eq "server of 198.51.100.10 on p32 within the timeout" "$first" "$FLOW_SERVERS"
t_last="$FLOW_LAST"
wait_until $((TIMEOUT * 3 + 10)) no_template 198.51.100.10 "$VIP32" \
    || fail "the p32 template of 198.51.100.10 outlived $((TIMEOUT * 3 + 10)) s: $(nsx dir1 ipvsadm -Lnc | tr '\n' ';')"
t_gone="$(now_cs)"
lived=$((t_gone - t_last))
[ "$lived" -ge $((TIMEOUT * 100 - 2)) ] || fail "the p32 template of 198.51.100.10 ended $lived cs after its last flow, before the ${TIMEOUT} s timeout"
echo "ok: the p32 template of 198.51.100.10 ended $lived cs after its last flow (timeout ${TIMEOUT} s)"
sticky_flows "198.51.100.10 on p32 after the timeout" 2 "$VIP32"
[ "$FLOW_SERVERS" != "$first" ] || fail "198.51.100.10 is still on $first after its template expired (rr gives the next server)"
echo "ok: 198.51.100.10 moved from $first to $FLOW_SERVERS after the timeout"

# --- p24: one /24 is one group -------------------------------------------------
group=""
for src in 198.51.100.10 198.51.100.21 198.51.100.22; do
    client_from "$src"
    sticky_flows "$src on p24" 3 "$VIP24"
    [ -z "$group" ] && group="$FLOW_SERVERS"
    expect_eq "server of $src on p24 (one group for 198.51.100.0/24)" "$group" "$FLOW_SERVERS"
done
expect_eq "p24 template of 198.51.100.0/24 points at" "$(topo_ip4 "$group"):53" "$(template_of 198.51.100.0 "$VIP24")"
client_from 198.51.101.10
sticky_flows "198.51.101.10 on p24" 3 "$VIP24"
[ "$FLOW_SERVERS" != "$group" ] || fail "198.51.101.10 shares $group with 198.51.100.0/24 on p24: another /24 must be another group"

# --- p64: one /64 is one group -------------------------------------------------
group=""
for src in 2001:db8:100::10 2001:db8:100::20 2001:db8:100::21; do
    client_from "$src"
    sticky_flows "$src on p64" 3 "$VIP64"
    [ -z "$group" ] && group="$FLOW_SERVERS"
    expect_eq "server of $src on p64 (one group for 2001:db8:100::/64)" "$group" "$FLOW_SERVERS"
done
expect_eq "p64 template of 2001:db8:100::/64 points at" "[$(topo_ip6 "$group")]:53" "$(template_of "[2001:db8:100::]" "[$VIP64]")"
client_from 2001:db8:101::10
sticky_flows "2001:db8:101::10 on p64" 3 "$VIP64"
[ "$FLOW_SERVERS" != "$group" ] || fail "2001:db8:101::10 shares $group with 2001:db8:100::/64 on p64: another /64 must be another group"

# --- tcp: new TCP connections of one client stick as well ------------------------
client_from 198.51.100.10
fetch_dist 6 "http://$VIPT/"
expect_no_errors
expect_sticky
first="$(dist_winner)"
client_from 198.51.100.21
fetch_dist 6 "http://$VIPT/"
expect_no_errors
expect_sticky
[ "$(dist_winner)" != "$first" ] || fail "198.51.100.21 shares $first with 198.51.100.10 on tcp: without prefixLength each address must be its own group"
agent_alive dir1 || fail "agent on dir1 died"
