# HTTP health checks: a GET of /cgi-bin/health on each realserver (a CGI whose
# answer the scenario sets). rs2 answering 500 is taken out (weight 0) within
# fall*interval + 1 s and named Failing with the status as its last error; 200
# brings it back. rs3 not answering within the timeout is taken out the same
# way, and comes back once it answers. Meanwhile requests through the VIP all
# succeed and avoid the failed realserver.
# lab-timeout: 180
. /lab/scenario.sh
INTERVAL=2 FALL=2 RISE=2 TIMEOUT=1
VIP=203.0.113.66
agent_lab_up
topo_rs_gateway dir1
for r in rs1 rs2 rs3; do rs_health_cgi "$r"; done
got="$(nsx dir1 timeout 5 wget -q -O - http://10.0.1.11/cgi-bin/health 2>&1)"
expect_eq "the check page of rs1 (busybox httpd CGI)" "rs1 200" "$got"
manifest_health_vs hh "$VIP" 80 TCP NAT hh "{type: HTTP, path: /cgi-bin/health, expectedStatus: [\"200\"], bodyContains: \"200\", intervalSeconds: $INTERVAL, timeoutSeconds: $TIMEOUT, fall: $FALL, rise: $RISE}"
for r in rs1 rs2 rs3; do manifest_rs_addr "hh-$r" hh "$r" 80; done
agent_start dir1
ipvs_expect dir1 30 <<RULES
$(sched_rules "$VIP:80" rr 80 rs1=1 rs2=1 rs3=1)
RULES
# Still all in after several checks.
ok_checks() { agent_metrics dir1 | awk '/^lvs_agent_health_probes_total\{type="HTTP",result="ok"\}/ { n = $2 } END { exit !(n >= 9) }'; }
wait_until 20 ok_checks || fail "fewer than 9 successful HTTP checks: $(agent_metrics dir1 | grep health_probes)"
echo "$(sched_rules "$VIP:80" rr 80 rs1=1 rs2=1 rs3=1)" | ipvs_expect dir1 1

# answer_flip RS ANSWER WEIGHT BOUND WORD: RS's check page answers ANSWER;
# within BOUND s (+1) its destination has WEIGHT.
answer_flip() {
    local t0 t1
    t0="$(now_cs)"
    rs_health_set "$1" "$2"
    wait_dest_weight dir1 -t "$VIP:80" "$(topo_ip4 "$1"):80" "$3" $(( $4 + 10 ))
    t1="$(now_cs)"
    expect_at_most "cs from the $2 until $1 is $5" $(( ($4 + 1) * 100 )) $(( t1 - t0 ))
    echo "summary: $2 on $1: $5 after $(( t1 - t0 )) cs"
}

# 500: out.
answer_flip rs2 500 0 $(( FALL * INTERVAL )) out
expect_dest_state dir1 10.0.1.12:80 Failing
agent_status dir1 | grep -q '"lastError":"HTTP GET /cgi-bin/health from 10.0.1.12:80: status 500, expected 200"' \
    || fail "/status does not give rs2's status 500 as its last error: $(agent_status dir1 | grep -o '"destinations":.*' | head -c 600)"
echo "ok: /status gives status 500 as rs2's last error"
fetch_dist 8 "http://$VIP/"
expect_no_errors
expect_eq "requests answered by rs2 (failing)" 0 "$(dist_of rs2)"

# 200: back after rise checks.
answer_flip rs2 200 1 $(( RISE * INTERVAL )) back

# No answer within the timeout: out.
answer_flip rs3 hang 0 $(( FALL * INTERVAL + TIMEOUT )) out
agent_status dir1 | grep -q '"lastError":"HTTP check of 10.0.1.13:80: no answer within 1s"' \
    || fail "/status does not give rs3's timeout as its last error: $(agent_status dir1 | grep -o '"destinations":.*' | head -c 600)"
echo "ok: /status gives the timeout as rs3's last error"
fetch_dist 8 "http://$VIP/"
expect_no_errors
expect_eq "requests answered by rs3 (failing)" 0 "$(dist_of rs3)"
rs_health_set rs3 200
wait_dest_weight dir1 -t "$VIP:80" 10.0.1.13:80 1 $(( RISE * INTERVAL + TIMEOUT + 10 ))
fetch_dist 9 "http://$VIP/"
expect_no_errors
for r in rs1 rs2 rs3; do expect_eq "requests answered by $r (all healthy)" 3 "$(dist_of "$r")"; done
