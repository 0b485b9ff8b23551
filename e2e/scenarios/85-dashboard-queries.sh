# shellcheck shell=bash
# The shipped Grafana dashboard (charts/lvs-operator/dashboards/lvs-operator.json)
# against a real Prometheus (e2e/cluster/build-tools.sh prometheus, built
# before the lab starts) scraping every agent and the operator, as the chart's
# PodMonitors would: a DR VirtualService with a health check on two
# directors with director HA, traffic through it, then every query of the
# dashboard (panel targets, and the template variables' label_values as
# `count by (LABEL) (EXPR)`) evaluated through Prometheus' HTTP API must
# return at least one series. Grafana's variables become: $instance .*,
# $virtual_service the scenario's VirtualService, $__rate_interval 1m.
#
# Only labs whose agents' metrics the host reaches (lab_has metrics-scrape:
# the joined lab forwards a host port to each node's :9477) register it.
if lab_has metrics-scrape; then
  scenario dashboard-queries sc_dashboard_queries
fi

DASH_VS=dash-web
DASH_VIP=192.0.2.40
DASH_SCRAPE=2s

# _dash_q QUERY: Prometheus' answer (JSON) to the instant query QUERY.
_dash_q() {
  curl -fsS --max-time 10 "$DASH_PROM/api/v1/query" --data-urlencode "query=$1"
}
# _dash_n QUERY: how many series QUERY returns (empty on an error).
_dash_n() { _dash_q "$1" | jq -r 'select(.status == "success") | .data.result | length'; }
_dash_has() { local n; n=$(_dash_n "$1"); [[ -n $n ]] && ((n > 0)); }
_dash_stop() { lvs_proc_stop "$DASH_DIR/prometheus.pid" TERM 10; }
# _dash_vip_active: one of the two directors is active for the VIP.
_dash_vip_active() {
  local d
  for d in dir1 dir2; do
    lab_ha_state "$(lab_node "$d")" | jq -e --arg v "$DASH_VIP" 'any(.active[]; . == $v)' >/dev/null && return 0
  done
  return 1
}

sc_dashboard_queries() {
  local prom="$LVS_CACHE/cluster-lab/bin/prometheus"
  local json="$LVS_REPO/charts/lvs-operator/dashboards/lvs-operator.json"
  [[ -x $prom ]] || sc_fail "no Prometheus at $prom (e2e/cluster/build-tools.sh prometheus; the joined run-suite.sh builds it before the lab starts)"

  # Objects: DR on dir1 and dir2 (HA on), realservers rs1 and rs2, a TCP
  # health check every 2 s.
  sc_reset
  k label node "$(lab_node dir1)" "$(lab_node dir2)" lvs.lvs-operator.io/director-group=dash --overwrite >/dev/null ||
    sc_fail "cannot label the directors"
  lab_ha_on "$(lab_node dir1)" "$(lab_node dir2)" || sc_fail "the directors' agents do not serve GET /ha with HA on"
  {
    sc_vs_yaml "$DASH_VS" "$DASH_VIP" 80 DR dash lvs.lvs-operator.io/director-group=dash \
      "healthCheck: {type: TCP, intervalSeconds: 2, timeoutSeconds: 1, rise: 1, fall: 2}"
    local n
    for n in rs1 rs2; do sc_rs_yaml "dash-$n" dash "{nodeName: $(lab_node "$n"), weight: 1}"; done
  } | k apply -f - >/dev/null || sc_fail "kubectl apply of the dashboard scenario's objects failed"
  sc_wait_vs "$DASH_VS" 2 120
  sc_retry 60 _dash_vip_active ||
    sc_fail "no director is active for $DASH_VIP after 60 s (GET /ha: $(lab_ha_state "$(lab_node dir1)" | jq -c .active))"

  # Prometheus on the host, a static scrape config from the lab's targets.
  DASH_DIR=$(mktemp -d "$LVS_CACHE/dashboard-queries.XXXXXX")
  trap _dash_stop EXIT
  local job name addr targets=0
  {
    printf 'global: {scrape_interval: %s, scrape_timeout: %s}\nscrape_configs:\n' "$DASH_SCRAPE" "$DASH_SCRAPE"
    for job in lvs-agent lvs-operator; do
      printf '  - job_name: %s\n    metrics_path: /metrics\n    static_configs:\n' "$job"
      while read -r j name addr; do
        [[ $j == "$job" ]] || continue
        printf '      - targets: ["%s"]\n        labels: {node: "%s"}\n' "$addr" "$name"
      done < <(lab_metrics_targets)
    done
  } >"$DASH_DIR/prometheus.yml"
  targets=$(lab_metrics_targets | grep -c .)
  local port
  port=$(lvs_free_port 19090) || sc_fail "no free port for Prometheus"
  DASH_PROM=http://127.0.0.1:$port
  lvs_proc_start "$DASH_DIR/prometheus.pid" "$DASH_DIR/prometheus.log" setsid "$prom" \
    --config.file="$DASH_DIR/prometheus.yml" --storage.tsdb.path="$DASH_DIR/data" \
    --web.listen-address="127.0.0.1:$port" --storage.tsdb.retention.time=1h
  sc_retry 60 _dash_has 'up' ||
    sc_fail "Prometheus does not answer on $DASH_PROM within 60 s: $(tail -n 3 "$DASH_DIR/prometheus.log" | tr '\n' ' ')"
  if ! sc_retry 60 _dash_has "count(up == 1) == $targets"; then
    sc_fail "not every target is up after 60 s: $(_dash_q 'up == 0' | jq -c '[.data.result[].metric | .job + " " + .node]')"
  fi
  sc_ok "Prometheus $DASH_PROM scrapes $targets targets (every ${DASH_SCRAPE})"

  # Traffic, then a full resync on both directors: the kernel counters are
  # exported from the snapshot of the last full sync.
  sc_traffic_start dash "http://$DASH_VIP/"
  sc_retry 60 _dash_has "lvs_agent_destination_connections_total{virtual_service=\"default/$DASH_VS\"} > 0" || {
    lab_agent_resync "$(lab_node dir1)"
    lab_agent_resync "$(lab_node dir2)"
    sc_retry 60 _dash_has "lvs_agent_destination_connections_total{virtual_service=\"default/$DASH_VS\"} > 0"
  } || sc_fail "no connections of default/$DASH_VS in Prometheus after 120 s of traffic"
  lab_agent_resync "$(lab_node dir1)"
  lab_agent_resync "$(lab_node dir2)"
  # rate() over 1m needs two samples of the new counters in the window.
  sc_retry 60 _dash_has "rate(lvs_agent_service_connections_total{virtual_service=\"default/$DASH_VS\"}[1m]) > 0" ||
    sc_fail "no connection rate of default/$DASH_VS after 60 s"
  # The traffic must have run; its errors are not what this scenario judges.
  sc_traffic_stop dash
  ((TRAFFIC_OK >= 20)) || sc_fail "traffic dash: only $TRAFFIC_OK requests answered; the traffic did not run"
  sc_ok "traffic through $DASH_VIP: $TRAFFIC_OK answered, $TRAFFIC_ERR failed"

  # Every query of the dashboard.
  local queries where expr n failed=() total=0 sample
  queries=$(jq -r --arg vs "default/$DASH_VS" '
      def subst: gsub("\\$__rate_interval"; "1m") | gsub("\\$instance"; ".*") | gsub("\\$virtual_service"; $vs);
      ([.panels[] | ., (.panels // [])[]] | .[] | .title as $t | (.targets // [])[] | select(.expr)
        | "panel \"\($t)\" \(.refId)\t\(.expr | subst)"),
      (.templating.list[] | select(.type == "query") | (.query.query // .query) as $q
        | ($q | capture("^label_values\\((?<e>.*),\\s*(?<l>[a-zA-Z_]+)\\)$")) as $c
        | "variable \(.name)\tcount by (\($c.l)) (\($c.e | subst))")' "$json") ||
    sc_fail "cannot read the queries of $json"
  [[ -n $queries ]] || sc_fail "no query found in $json"
  while IFS=$'\t' read -r where expr; do
    total=$((total + 1))
    # Series appear at each scrape: give a query a few scrapes before it
    # counts as empty.
    if ! sc_retry 20 _dash_has "$expr"; then
      failed+=("$where")
      echo "EMPTY $where: $expr"
      continue
    fi
    n=$(_dash_n "$expr")
    sample=$(_dash_q "$expr" | jq -c '.data.result[0] | [.metric, .value[1]]')
    echo "data  $where: $n series, e.g. $sample"
  done <<<"$queries"
  ((${#failed[@]} == 0)) || sc_fail "${#failed[@]} of $total dashboard queries return no data: ${failed[*]}"
  sc_ok "all $total dashboard queries return data"
  sc_info "dashboard-queries: $total queries, $targets targets"
  _dash_stop
  rm -rf "$DASH_DIR"
  k delete "$VS_GROUP" "$DASH_VS" -n default --wait=true --timeout=90s >/dev/null
  k delete "$RS_GROUP" dash-rs1 dash-rs2 -n default --wait=true --timeout=90s >/dev/null
}
