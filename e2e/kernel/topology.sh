# Lab topology: network namespaces as nodes inside the VM. Source it inside the
# guest (after /lab/lib.sh) and call topo_up / topo_down.
#
#   client ──(front)── router ──(br-lan)── dir1, dir2, rs1, rs2, rs3
#                         └─────(br-rem)── rs4, rs5
#
# Addressing plan (documentation and private ranges; it exists only in the VM):
#
#   front  (veth client:eth0 <-> router:front0)
#     198.51.100.0/24  router .1      client .10
#     2001:db8:100::/64 router ::1    client ::10
#   lan    (bridge br-lan in the VM's root namespace; router:lan0, <node>:eth0)
#     10.0.1.0/24      router .1  dir1 .2  dir2 .3  rs1 .11  rs2 .12  rs3 .13
#     2001:db8:1::/64  router ::1 dir1 ::2 dir2 ::3 rs1 ::11 rs2 ::12 rs3 ::13
#     The router also holds 203.0.113.1/24 on lan0: IPv4 VIPs (203.0.113.0/24)
#     are on-link on the lan, so the router ARPs for them and whichever node
#     answers gets the traffic (the director, unless a DR realserver leaks ARP).
#   remote (bridge br-rem; router:rem0, <node>:eth0)
#     10.0.2.0/24      router .1  rs4 .14  rs5 .15
#     2001:db8:2::/64  router ::1 rs4 ::14 rs5 ::15
#   VIPs: IPv4 203.0.113.0/24 (on-link on the lan); IPv6 2001:db8:f::/64,
#     routed by the router to a director (topo_route_vip6, default dir1), or
#     on-link on the lan (topo_vip6_onlink).
#
# Default routes: client, dir1, dir2, rs4 and rs5 via the router. rs1-rs3 via the
# router too; NAT needs them via the director: topo_rs_gateway dir1.
#
# Every namespace: lo up (IPVS refuses destinations while lo is down), IPv6 DAD
# off, ICMP redirects not accepted. The router forwards; the directors forward.
# Realservers rs1-rs5 run busybox httpd on :80 serving /index.html = "<name>\n",
# and a TCP echo server on :9000 (nc -ll -e cat) for connection-count tests.
# shellcheck shell=sh

TOPO_NODES="client router dir1 dir2 rs1 rs2 rs3 rs4 rs5"
# IPv4 networks (first three octets of each /24). Other labs built on this
# topology (e2e/joined) move them; the defaults are the kernel lab's plan above.
TOPO_LAN4="${TOPO_LAN4:-10.0.1}"
TOPO_REM4="${TOPO_REM4:-10.0.2}"
TOPO_VIP4="${TOPO_VIP4:-203.0.113}"
TOPO_LAN_NODES="dir1 dir2 rs1 rs2 rs3"
TOPO_REM_NODES="rs4 rs5"
TOPO_REALSERVERS="rs1 rs2 rs3 rs4 rs5"

# Host part of each node's address on its network.
topo_host_id() {
    case "$1" in
        client) echo 10 ;; router) echo 1 ;; dir1) echo 2 ;; dir2) echo 3 ;;
        rs1) echo 11 ;; rs2) echo 12 ;; rs3) echo 13 ;; rs4) echo 14 ;; rs5) echo 15 ;;
        *) echo "topo: unknown node $1" >&2; return 1 ;;
    esac
}
# topo_ip4 NODE / topo_ip6 NODE: the node's own address (its "InternalIP").
topo_ip4() {
    case "$1" in
        client) echo 198.51.100.10 ;;
        router) echo "$TOPO_LAN4.1" ;;
        rs4|rs5) echo "$TOPO_REM4.$(topo_host_id "$1")" ;;
        *) echo "$TOPO_LAN4.$(topo_host_id "$1")" ;;
    esac
}
topo_ip6() {
    case "$1" in
        client) echo 2001:db8:100::10 ;;
        router) echo 2001:db8:1::1 ;;
        rs4|rs5) echo "2001:db8:2::$(topo_host_id "$1")" ;;
        *) echo "2001:db8:1::$(topo_host_id "$1")" ;;
    esac
}
# topo_mac NODE [IFACE]: link-layer address of the node's interface (eth0).
topo_mac() { /usr/sbin/ip -n "$1" -o link show "${2:-eth0}" | sed -n 's|.*link/ether \([0-9a-f:]*\).*|\1|p'; }

# _topo_sysctl NODE VAR=VALUE...: set sysctls inside NODE (busybox sysctl).
_topo_sysctl() {
    _n="$1"; shift
    nsx "$_n" sysctl -q -w "$@" >/dev/null || { echo "topo: sysctl $* failed in $_n" >&2; return 1; }
}

# _topo_batch [NODE]: run ip commands from stdin in NODE (root namespace when
# empty) with one ip process: each exec of the dynamic ip costs ~35 ms under TCG.
_topo_batch() {
    if [ -n "${1:-}" ]; then /usr/sbin/ip -n "$1" -batch -; else /usr/sbin/ip -batch -; fi \
        || { echo "topo: ip batch failed in ${1:-root namespace}" >&2; return 1; }
}

_topo_webroot() {
    mkdir -p "/run/lab/www/$1"
    echo "$1" >"/run/lab/www/$1/index.html"
}

# topo_up: build the whole topology and start the realservers' servers.
topo_up() {
    topo_down 2>/dev/null
    modprobe veth && modprobe bridge || return 1

    for n in $TOPO_NODES; do echo "netns add $n"; done | _topo_batch || return 1
    for n in $TOPO_NODES; do
        # Before any interface arrives, so they inherit it.
        _topo_sysctl "$n" net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 \
            net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 \
            net.ipv6.conf.all.accept_redirects=0 net.ipv6.conf.default.accept_redirects=0 \
            net.ipv6.conf.default.accept_ra=0 || return 1
    done

    # Links, created from the root namespace straight into their nodes.
    {
        echo "link add eth0 netns client type veth peer name front0 netns router"
        for b in br-lan br-rem; do
            echo "link add $b type bridge forward_delay 0 stp_state 0 mcast_snooping 0"
            echo "link set $b up"
        done
        echo "link add lan0 netns router type veth peer name v-router"
        echo "link set v-router master br-lan up"
        echo "link add rem0 netns router type veth peer name v-router-rem"
        echo "link set v-router-rem master br-rem up"
        for n in $TOPO_LAN_NODES; do
            echo "link add eth0 netns $n type veth peer name v-$n"
            echo "link set v-$n master br-lan up"
        done
        for n in $TOPO_REM_NODES; do
            echo "link add eth0 netns $n type veth peer name v-$n"
            echo "link set v-$n master br-rem up"
        done
    } | _topo_batch || return 1

    # Addresses and routes, one batch per node.
    for n in $TOPO_NODES; do
        {
            echo "link set lo up"
            case "$n" in
                client)
                    echo "addr add 198.51.100.10/24 dev eth0"
                    echo "addr add 2001:db8:100::10/64 dev eth0 nodad"
                    echo "link set eth0 up"
                    echo "route add default via 198.51.100.1"
                    echo "route add default via 2001:db8:100::1"
                    ;;
                router)
                    echo "addr add 198.51.100.1/24 dev front0"
                    echo "addr add 2001:db8:100::1/64 dev front0 nodad"
                    echo "addr add $TOPO_LAN4.1/24 dev lan0"
                    echo "addr add $TOPO_VIP4.1/24 dev lan0"
                    echo "addr add 2001:db8:1::1/64 dev lan0 nodad"
                    echo "addr add $TOPO_REM4.1/24 dev rem0"
                    echo "addr add 2001:db8:2::1/64 dev rem0 nodad"
                    echo "link set front0 up"
                    echo "link set lan0 up"
                    echo "link set rem0 up"
                    echo "route add 2001:db8:f::/64 via $(topo_ip6 dir1)"
                    ;;
                *)
                    echo "addr add $(topo_ip4 "$n")/24 dev eth0"
                    echo "addr add $(topo_ip6 "$n")/64 dev eth0 nodad"
                    echo "link set eth0 up"
                    case "$n" in
                        rs4|rs5) echo "route add default via $TOPO_REM4.1"
                                 echo "route add default via 2001:db8:2::1" ;;
                        *)       echo "route add default via $TOPO_LAN4.1"
                                 echo "route add default via 2001:db8:1::1" ;;
                    esac
                    ;;
            esac
        } | _topo_batch "$n" || return 1
    done

    _topo_sysctl router net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
        net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 || return 1
    for n in dir1 dir2; do
        _topo_sysctl "$n" net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 || return 1
    done

    # Realserver services.
    for n in $TOPO_REALSERVERS; do
        _topo_webroot "$n"
        nsx "$n" httpd -p 80 -h "/run/lab/www/$n" || return 1
        nsx "$n" sh -c 'nc -ll -p 9000 -e /bin/cat </dev/null >/dev/null 2>&1 &'
    done
    for n in $TOPO_REALSERVERS; do
        wait_until 10 topo_listening "$n" 80 || { echo "topo: httpd on $n not listening" >&2; return 1; }
        wait_until 10 topo_listening "$n" 9000 || { echo "topo: echo server on $n not listening" >&2; return 1; }
    done
}

# topo_listening NODE PORT: something listens on TCP PORT in NODE (state 0A in
# /proc/net/tcp{,6}, which shows the reader's network namespace).
topo_listening() {
    _hex="$(printf '%04X' "$2")"
    nsx "$1" cat /proc/net/tcp /proc/net/tcp6 | awk -v p=":$_hex" '$2 ~ p"$" && $4 == "0A" {f=1} END {exit !f}'
}

# topo_rs_gateway dir1|router [RS...]: default route of the lan realservers RS
# (default rs1-rs3; NAT needs the director).
topo_rs_gateway() {
    case "$1" in
        router) _gw4="$TOPO_LAN4.1" _gw6=2001:db8:1::1 ;;
        dir1|dir2) _gw4="$(topo_ip4 "$1")" _gw6="$(topo_ip6 "$1")" ;;
        *) echo "topo_rs_gateway: router, dir1 or dir2, not $1" >&2; return 1 ;;
    esac
    shift
    for n in ${*:-rs1 rs2 rs3}; do
        printf 'route replace default via %s\nroute replace default via %s\n' "$_gw4" "$_gw6" \
            | _topo_batch "$n" || return 1
    done
}

# topo_route_vip6 NODE: the router sends 2001:db8:f::/64 (IPv6 VIPs) to NODE.
topo_route_vip6() {
    /usr/sbin/ip -n router -6 route replace 2001:db8:f::/64 via "$(topo_ip6 "$1")"
}
# topo_vip6_onlink: 2001:db8:f::/64 (IPv6 VIPs) on-link on the lan, as the
# IPv4 VIPs are: the router resolves each VIP by neighbour discovery on lan0,
# and whichever node answers gets the traffic (IPv6 DR).
topo_vip6_onlink() {
    /usr/sbin/ip -n router -6 route replace 2001:db8:f::/64 dev lan0
}

# topo_down: kill every process in the lab namespaces and remove them.
topo_down() {
    for n in $TOPO_NODES; do
        [ -e "/run/netns/$n" ] || continue
        _pids="$(/usr/sbin/ip netns pids "$n" 2>/dev/null)"
        [ -n "$_pids" ] && kill -9 $_pids 2>/dev/null
    done
    # Root-side links first: deleting them is synchronous, netns teardown is not.
    {
        for l in v-router v-router-rem $(for n in $TOPO_NODES; do echo "v-$n"; done) br-lan br-rem; do
            [ -e "/sys/class/net/$l" ] && echo "link del $l"
        done
        for n in $TOPO_NODES; do
            [ -e "/run/netns/$n" ] && echo "netns del $n"
        done
    } | /usr/sbin/ip -force -batch - 2>/dev/null
    rm -rf /run/lab/www
    return 0
}

# --- traffic helpers ----------------------------------------------------------

# topo_fetch URL [NODE]: one HTTP GET from NODE (default client); prints the body.
topo_fetch() { nsx "${2:-client}" timeout 5 wget -q -O - "$1"; }

# topo_fetch_n N URL [NODE]: N sequential GETs from NODE in one process; prints
# one body per line ("ERR" for a failed request).
topo_fetch_n() {
    nsx "${3:-client}" sh -c '
        i=0
        while [ "$i" -lt "$1" ]; do
            timeout 5 wget -q -O - "$2" 2>/dev/null || echo ERR
            i=$((i + 1))
        done' fetch "$1" "$2"
}

# topo_count NAME <lines: how many lines equal NAME.
topo_count() { grep -cx "$1" || true; }
