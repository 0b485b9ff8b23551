# The agent harness itself (guest/agent.sh), exercised with a test double that
# takes the node agent's command line (guest/fake-agent.sh): the launcher runs
# it in the node's namespace with the CLI contract, captures its log, stops it;
# ipvs_expect waits for convergence and reports a mismatch as a failure.
. /lab/scenario.sh
LAB_AGENT_BIN=/lab/fake-agent.sh
topo_up || fail "topology did not come up"
manifest_lab_nodes
grep -q 'address: 10.0.1.2' "$LAB_MANIFESTS/node-dir1.yaml" || fail "Node manifest for dir1 lacks its InternalIP"
grep -q 'lab.lvs-operator.io/role: "director"' "$LAB_MANIFESTS/node-dir1.yaml" || fail "Node manifest for dir1 lacks the role label"
cat "$LAB_MANIFESTS/node-dir1.yaml"

agent_start dir1
pid="$(cat "$LAB_AGENT_RUN/dir1.pid")"
expect_eq "network namespace of the agent process" \
    "$(stat -L -c %i /run/netns/dir1)" "$(stat -L -c %i "/proc/$pid/ns/net")"
tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "--node-name dir1 --state-dir /run/lab/state/dir1" \
    || fail "agent command line lacks the CLI contract: $(tr '\0' ' ' <"/proc/$pid/cmdline")"

printf '%s\n' "-A -t 203.0.113.10:8080 -s rr" "-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1" \
    >"$LAB_MANIFESTS/dir1.ipvsadm"
ipvs_expect dir1 10 <<'RULES'
-A -t 203.0.113.10:8080 -s rr
-a -t 203.0.113.10:8080 -r 10.0.1.11:80 -m -w 1
RULES

# A wrong expectation must time out and report, not pass.
if ipvs_expect_quiet dir1 2 <<'RULES'
-A -t 203.0.113.10:8080 -s wrr
RULES
then fail "ipvs_expect accepted a table that differs"; fi
echo "ok: ipvs_expect rejects a differing table"

expect_eq "IPVS rules in the VM's root namespace" "" "$(ipvsadm -Sn)"
grep -q "fake-agent: applied" "$(_agent_logs)/dir1.log" || fail "agent log not captured"
agent_stop dir1
agent_alive dir1 && fail "agent still running after agent_stop"
pid_running "$pid" && fail "agent process $pid still running"
echo "ok: agent stopped"
