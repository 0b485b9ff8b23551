# lvs-ipvs against the real kernel, through its examples ipvs-dump and
# ipvs-apply (run-suite.sh builds them and packs them into the VM for ipvs-*
# scenarios). Compares the library's view with ipvsadm's in both directions:
# rules made by ipvsadm read through the library, rules made through the
# library read by ipvsadm; then the mapping of each kernel error to its rule,
# and pipelined batches with their sendmsg counts. Runs in a namespace of its
# own, so its rules never meet another scenario's.
. /lab/scenario.sh
check_same() { # NAME FILE1 FILE2
    if diff -u "$2" "$3"; then echo "ok: $1"; else fail "$1 differs"; fi
}
command -v ipvs-dump >/dev/null || fail "ipvs-dump is not in the VM (run-suite.sh packs it for ipvs-* scenarios)"
command -v ipvs-apply >/dev/null || fail "ipvs-apply is not in the VM (run-suite.sh packs it for ipvs-* scenarios)"
modprobe ip_vs || fail "modprobe ip_vs"
# The rest runs in the namespace ipvs-smoke (lo up: IPVS refuses destinations
# while it is down); every command below is the namespace's.
/usr/sbin/ip netns del ipvs-smoke 2>/dev/null
/usr/sbin/ip netns add ipvs-smoke && /usr/sbin/ip -n ipvs-smoke link set lo up || fail "cannot create the namespace ipvs-smoke"
trap '/usr/sbin/ip netns del ipvs-smoke 2>/dev/null' EXIT
ipvsadm() { nsx ipvs-smoke ipvsadm "$@"; }
smoke_dump() { nsx ipvs-smoke /usr/bin/ipvs-dump "$@"; }
smoke_apply() { nsx ipvs-smoke /usr/bin/ipvs-apply "$@"; }

echo "== 1. rules made by ipvsadm, read through lvs-ipvs"
ipvsadm -A -t 10.0.0.1:80 -s wlc -p 300 -M 255.255.255.0
ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.5:8080 -m -w 10 -x 100 -y 10
ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.6:80 -g -w 1
ipvsadm -a -t 10.0.0.1:80 -r 10.0.1.7:80 -i -w 2 --tun-type gue --tun-port 6080 --tun-csum
ipvsadm -A -u [2001:db8::1]:53 -s sh -b sh-fallback,sh-port
ipvsadm -a -u [2001:db8::1]:53 -r [2001:db8::10]:5353 -m -w 3
ipvsadm -A -f 7 -s rr -p 60
ipvsadm -a -f 7 -r 10.0.2.5:0 -g -w 1
ipvsadm -A -f 9 -6 -s mh -b mh-port
ipvsadm -A --sctp-service 10.0.0.2:3868 -s lc
ipvsadm -A -u 10.0.0.2:5060 -s rr -o -p 180
ipvsadm -a --sctp-service 10.0.0.2:3868 -r 10.0.3.1:3868 -m -w 0
ipvsadm -Ln >/tmp/ipvsadm-list || fail "ipvsadm -Ln"
smoke_dump >/tmp/lib-list || fail "ipvs-dump"
check_same "ipvs-dump matches ipvsadm -Ln" /tmp/ipvsadm-list /tmp/lib-list
ipvsadm -Sn >/tmp/ipvsadm-save
smoke_dump --save >/tmp/lib-save || fail "ipvs-dump --save"
check_same "ipvs-dump --save matches ipvsadm -Sn" /tmp/ipvsadm-save /tmp/lib-save
cat /tmp/lib-list

echo "== 2. rules made through lvs-ipvs, read by ipvsadm"
ipvsadm -C
cat >/tmp/rules <<'RULES'
-A -t 192.0.2.10:80 -s rr
-a -t 192.0.2.10:80 -r 198.51.100.1:8080 -m -w 5
-a -t 192.0.2.10:80 -r 198.51.100.2:80 -g -w 1
-a -t 192.0.2.10:80 -r 198.51.100.3:80 -i -w 2 --tun-type ipip
-a -t 192.0.2.10:80 -r 198.51.100.4:80 -i -w 3 --tun-type gue --tun-port 5555 --tun-nocsum
-A -u 192.0.2.10:53 -s sh -p 120 -M 255.255.0.0 -b sh-fallback
-a -u 192.0.2.10:53 -r 198.51.100.1:53 -m -w 1
-A -t [2001:db8::a]:443 -s wlc -p 600 -M 64
-a -t [2001:db8::a]:443 -r [2001:db8:1::1]:8443 -m -w 7
-a -t [2001:db8::a]:443 -r [2001:db8:1::2]:443 -g -w 1
-A -f 42 -s wrr
-a -f 42 -r 198.51.100.9:0 -g -w 4
-A -f 43 -6 -s rr -p 30
-A -u 192.0.2.11:5060 -s rr -p 180 -o
-A --sctp-service 192.0.2.12:3868 -s lc
-a --sctp-service 192.0.2.12:3868 -r 198.51.100.5:3868 -m -w 0
RULES
smoke_apply /tmp/rules || fail "ipvs-apply of the rule set"
ipvsadm -Sn | sort >/tmp/kernel-sorted
sort /tmp/rules >/tmp/rules-sorted
check_same "ipvsadm -Sn shows exactly the rules applied through lvs-ipvs" /tmp/rules-sorted /tmp/kernel-sorted
ipvsadm -Ln >/tmp/ipvsadm-list2; smoke_dump >/tmp/lib-list2
check_same "ipvs-dump matches ipvsadm -Ln after library writes" /tmp/ipvsadm-list2 /tmp/lib-list2

echo "== 3. each kernel error maps to its rule"
printf '%s\n' \
    '-a -t 192.0.2.10:80 -r 198.51.100.50:80 -g -w 1' \
    '-A -t 192.0.2.10:80 -s rr' \
    '-a -t 192.0.2.99:80 -r 198.51.100.1:80 -g -w 1' \
    '-d -t 192.0.2.10:80 -r 198.51.100.77:80' \
    '-D -t 192.0.2.99:80' \
    '-e -t 192.0.2.10:80 -r 198.51.100.1:8080 -m -w 9 -x 100 -y 10' \
    >/tmp/mixed
smoke_apply --batch 16 /tmp/mixed >/tmp/mixed.out; rc=$?
cat /tmp/mixed.out
[ "$rc" -eq 1 ] || fail "ipvs-apply should report partial failure (rc 1), got $rc"
expect_line() { grep -qxF "$1" /tmp/mixed.out || fail "missing outcome line: $1"; }
expect_line "ok NEW_DEST TCP 192.0.2.10:80 -> 198.51.100.50:80"
expect_line "FAILED NEW_SERVICE TCP 192.0.2.10:80: errno 17 (eexist)"
expect_line "FAILED NEW_DEST TCP 192.0.2.99:80 -> 198.51.100.1:80: errno 3 (esrch)"
expect_line "FAILED DEL_DEST TCP 192.0.2.10:80 -> 198.51.100.77:80: errno 2 (enoent)"
expect_line "FAILED DEL_SERVICE TCP 192.0.2.99:80: errno 3 (esrch)"
expect_line "ok SET_DEST TCP 192.0.2.10:80 -> 198.51.100.1:8080"
ipvsadm -Ln --thresholds -t 192.0.2.10:80 | grep -q "198.51.100.1:8080 *100 *10 " \
    || { ipvsadm -Ln --thresholds -t 192.0.2.10:80; fail "SET_DEST thresholds not applied"; }
ipvsadm -Ln -t 192.0.2.10:80 | grep -q "198.51.100.1:8080 *Masq *9 " \
    || { ipvsadm -Ln -t 192.0.2.10:80; fail "SET_DEST weight not applied"; }
echo "ok: thresholds and weight updated in place"

echo "== 4. pipelining: 300 services per batch size"
i=0; : >/tmp/many; : >/tmp/many-del
while [ "$i" -lt 300 ]; do
    echo "-A -t 10.9.$((i / 250)).$((i % 250 + 1)):80 -s rr" >>/tmp/many
    echo "-D -t 10.9.$((i / 250)).$((i % 250 + 1)):80" >>/tmp/many-del
    i=$((i + 1))
done
for b in 1 16 64 256; do
    smoke_apply --batch "$b" /tmp/many >/dev/null 2>/tmp/cost || { cat /tmp/cost; fail "add 300 with batch $b"; }
    cat /tmp/cost
    n="$(ipvsadm -Ln | grep -c '^TCP  10\.9\.')"
    [ "$n" -eq 300 ] || fail "batch $b: $n services instead of 300"
    want=$(( (300 + b - 1) / b ))
    grep -q "300 requests in $want sendmsg calls" /tmp/cost || fail "batch $b: expected $want sendmsg calls"
    if [ "$b" -eq 256 ]; then
        # A 300-service dump spans several datagrams.
        smoke_dump --save >/tmp/many-lib 2>/tmp/dump-cost || fail "ipvs-dump of 300 services"
        cat /tmp/dump-cost
        ipvsadm -Sn | sort >/tmp/many-kernel
        sort /tmp/many-lib >/tmp/many-lib-sorted
        check_same "300-service dump matches ipvsadm -Sn" /tmp/many-kernel /tmp/many-lib-sorted
        dgrams="$(sed -n 's/.*service dump: 1 request, \([0-9]*\) datagrams/\1/p' /tmp/dump-cost)"
        [ "${dgrams:-0}" -gt 2 ] || fail "expected the service dump to span several datagrams plus DONE, got ${dgrams:-?}"
    fi
    smoke_apply --batch "$b" /tmp/many-del >/dev/null 2>/tmp/cost || { cat /tmp/cost; fail "delete 300 with batch $b"; }
    [ "$(ipvsadm -Ln | grep -c '^TCP  10\.9\.')" -eq 0 ] || fail "batch $b: services left after delete"
done
echo "ok: batches of 1/16/64/256 with ceil(300/b) sendmsg calls each"
ipvsadm -C
[ "$(smoke_dump --save | wc -l)" -eq 0 ] || fail "table not empty after flush"
