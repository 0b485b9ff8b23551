# Kernel fact: the "twos" scheduler (random two-choice, Linux 6.x later than
# 6.1) is not in the Debian 6.1 kernel. This passes while that holds: the module
# is absent and IPVS refuses the scheduler. When it fails, the kernel gained
# twos and the lab should test it like the others.
. /lab/scenario.sh
sched_topology
ls "/lib/modules/$(uname -r)/kernel/net/netfilter/ipvs/"
if modprobe -n ip_vs_twos 2>/dev/null; then
    fail "kernel $(uname -r) has ip_vs_twos: add a scheduler scenario for it"
fi
out="$(ipvs dir1 -A -t "$SCHED_VIP:8080" -s twos 2>&1)" \
    && fail "IPVS accepted scheduler twos on $(uname -r): add a scheduler scenario for it"
echo "ok: kernel $(uname -r) refuses twos: $out"
