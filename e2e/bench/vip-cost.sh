# Guest script (busybox sh) for e2e/kernel/run-vm.sh: what owning N VIPs
# costs the kernel as interface addresses (what the agent does for a
# director) against local routes (`ip route add local VIP/32 table local`,
# which also make the node accept and ARP-answer the address).
#
#   e2e/kernel/run-vm.sh --mem 2048 --timeout 900 --env N=20000 e2e/bench/vip-cost.sh
#
# Prints "vip_cost n=N addr_s=... route_s=..." on the console. An IPv4
# address add walks the interface's address list, so N adds cost O(N^2);
# a route add into the FIB trie does not.
. /lab/lib.sh
modprobe dummy || exit 1
N=${N:-20000}
gen() {
    i=0
    while [ "$i" -lt "$N" ]; do
        echo "$1 10.$((100 + i / 65536)).$(((i / 256) % 256)).$((i % 256))/32 $2"
        i=$((i + 1))
    done
}
gen "addr add" "dev d0" >/tmp/addr.batch
gen "route add local" "dev d1 table local proto 250" >/tmp/route.batch
for ns in a r; do ip netns add "$ns" && ip -n "$ns" link set lo up || exit 1; done
ip -n a link add d0 type dummy && ip -n a link set d0 up || exit 1
ip -n r link add d1 type dummy && ip -n r link set d1 up || exit 1
up() { cut -d' ' -f1 /proc/uptime; }
t0=$(up); ip -n a -batch /tmp/addr.batch || exit 1
t1=$(up); ip -n r -batch /tmp/route.batch || exit 1
t2=$(up)
addrs=$(ip -n a -4 addr show dev d0 | grep -c inet)
routes=$(ip -n r route show table local proto 250 | wc -l)
[ "$addrs" -eq "$N" ] && [ "$routes" -eq "$N" ] || { echo "vip_cost: $addrs addresses, $routes routes, wanted $N"; exit 1; }
echo "vip_cost n=$N addr_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}') route_s=$(awk -v a="$t1" -v b="$t2" 'BEGIN {print b - a}')"
