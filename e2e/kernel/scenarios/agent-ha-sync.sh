# Director HA connection sync in standalone mode: dir1 (active) and dir2
# (standby) direct one DR VIP with static roles, and each runs the kernel's
# IPVS sync daemon both as master and as backup, on the interface of its node
# IP (eth0, the default) with the sync id given by --sync-id. A long-lived TCP
# stream through the VIP, balanced by dir1, shows up in dir2's connection
# table. A daemon started by hand is left alone and reported; an agent
# restarted without HA stops only the daemons it started.
# lab-timeout: 150
. /lab/scenario.sh
VIP=203.0.113.31
agent_lab_up
ha_pair_setup echo-ha "$VIP" 9000 --sync-id 7
wait_until 15 addr_held dir1 "$VIP" || true
expect_vip_on dir1 "$VIP"
expect_no_vip dir2 "$VIP"

daemons() { nsx "$1" ipvsadm -Ln --daemon 2>&1 | tr '\n' ';'; }
# has_daemon NODE ROLE IFACE SYNCID
has_daemon() { nsx "$1" ipvsadm -Ln --daemon 2>/dev/null | grep -Eq "^$2 sync daemon \(mcast=$3, syncid=$4[,)]"; }
for d in dir1 dir2; do
    for role in master backup; do
        wait_until 10 has_daemon "$d" "$role" eth0 7 \
            || fail "$d: no $role sync daemon on eth0 with sync id 7; ipvsadm --daemon: $(daemons "$d")"
    done
    echo "ok: $d runs: $(daemons "$d")"
done

# A long-lived stream: a line every 0.3 s to the echo servers through the VIP.
# The active syncs a connection once it is established and has carried a few
# packets (sync_threshold), so the standby knows it before any takeover.
nsx client sh -c "while :; do echo ping; sleep 0.3; done | nc $VIP 9000 >/tmp/ha-sync-stream.out 2>&1 &"
# conn_of NODE: the stream's entry in NODE's connection table (source,
# virtual, destination), empty when absent.
conn_of() {
    nsx "$1" ipvsadm -Lnc | awk -v v="$VIP:9000" '$3 == "ESTABLISHED" && $5 == v { print $4, $5, $6; exit }'
}
_has_conn() { [ -n "$(conn_of "$1")" ]; }
wait_until 10 _has_conn dir1 || fail "the stream is not in dir1's connection table: $(nsx dir1 ipvsadm -Lnc | tr '\n' ';')"
wait_until 15 _has_conn dir2 \
    || fail "the stream's connection was not synced to the standby dir2: dir1 has '$(conn_of dir1)', dir2's table: $(nsx dir2 ipvsadm -Lnc | tr '\n' ';')"
expect_eq "the stream's connection on the standby dir2 (synced from dir1)" "$(conn_of dir1)" "$(conn_of dir2)"
_stream_grew() { [ "$(wc -l </tmp/ha-sync-stream.out)" -gt "$1" ]; }
lines="$(wc -l </tmp/ha-sync-stream.out)"
wait_until 5 _stream_grew "$lines" || fail "the stream through $VIP does not flow ($lines lines echoed)"

# Someone else's daemon: dir2's backup replaced by hand with another sync id.
# The restarted agent keeps its own master (adopted through the ledger),
# leaves the foreign backup running and reports it.
agent_stop dir2
nsx dir2 ipvsadm --stop-daemon backup || fail "ipvsadm --stop-daemon backup failed on dir2"
nsx dir2 ipvsadm --start-daemon backup --mcast-interface eth0 --syncid 9 || fail "ipvsadm --start-daemon backup failed on dir2"
agent_start dir2 --ha-role "$VIP=standby" --sync-id 7
_reported() { grep -q "backup on eth0 (sync id 9) runs and was not started by this agent" "$(_agent_logs)/dir2.log"; }
wait_until 10 _reported || fail "dir2's agent did not report the foreign backup daemon"
sleep 1
has_daemon dir2 backup eth0 9 || fail "dir2's foreign backup daemon was touched: $(daemons dir2)"
has_daemon dir2 master eth0 7 || fail "dir2's own master daemon did not survive the restart: $(daemons dir2)"
echo "ok: dir2 left the foreign backup alone: $(daemons dir2)"

# Without HA the agent stops the daemons it started, and only those.
agent_stop dir2
agent_start dir2
_master_gone() { ! has_daemon dir2 master eth0 7; }
wait_until 10 _master_gone || fail "dir2's agent without HA did not stop its master daemon: $(daemons dir2)"
has_daemon dir2 backup eth0 9 || fail "dir2's agent without HA stopped the foreign backup daemon: $(daemons dir2)"
echo "ok: without HA dir2 runs only the foreign daemon: $(daemons dir2)"
for n in dir1 dir2 rs1 rs2 rs3; do agent_alive "$n" || fail "agent on $n died"; done
