# The chart's monitoring objects (templates/monitoring.yaml,
# templates/dashboards.yaml): none by default; PodMonitors or ServiceMonitors
# (with headless Services) for the agents and the operator when enabled, not
# both; the Grafana dashboard ConfigMap with its sidecar label and the
# dashboard JSON as it is in the chart. The Prometheus Operator's CRDs are not
# in this lab, so the monitors are checked as rendered; the Services and the
# ConfigMap go through a server-side dry run.

scenario chart-monitoring t_chart_monitoring
t_chart_monitoring() {
  local chart out rc n rel=lvs-mon
  chart=$(lvs_chart)

  out=$(helm template "$rel" "$chart" -n default)
  if grep -qE '^kind: (PodMonitor|ServiceMonitor)$|grafana_dashboard|-metrics$' <<<"$out"; then
    fail chart-monitoring/off-by-default "the default values render: $(grep -m1 -E '^kind: (PodMonitor|ServiceMonitor)$|grafana_dashboard|-metrics$' <<<"$out")"
  else
    pass chart-monitoring/off-by-default
  fi

  out=$(helm template "$rel" "$chart" -n default --show-only templates/monitoring.yaml \
    --set metrics.podMonitor.enabled=true --set metrics.podMonitor.labels.release=kps 2>&1)
  n=$(grep -c '^kind: PodMonitor$' <<<"$out")
  if ((n != 2)); then
    fail chart-monitoring/pod-monitors "$n PodMonitors rendered, expected 2 (agent, operator): $(error_line "$out")"
  elif grep -qE '^kind: (ServiceMonitor|Service)$' <<<"$out"; then
    fail chart-monitoring/pod-monitors "podMonitor.enabled also renders a Service or a ServiceMonitor"
  elif (($(grep -c 'release: kps' <<<"$out") != 2 || $(grep -c -- '- port: metrics' <<<"$out") != 2)); then
    fail chart-monitoring/pod-monitors "the PodMonitors lack the extra label or the metrics port: $out"
  else
    pass chart-monitoring/pod-monitors
  fi

  out=$(helm template "$rel" "$chart" -n default --show-only templates/monitoring.yaml \
    --set metrics.serviceMonitor.enabled=true 2>&1)
  n=$(grep -c '^kind: ServiceMonitor$' <<<"$out")
  local services
  if ((n != 2)); then
    fail chart-monitoring/service-monitors "$n ServiceMonitors rendered, expected 2: $(error_line "$out")"
  elif (($(grep -c '^kind: Service$' <<<"$out") != 2)); then
    fail chart-monitoring/service-monitors "expected 2 headless Services with the ServiceMonitors"
  elif ! services=$(helm template "$rel" "$chart" -n default --set metrics.serviceMonitor.enabled=true \
    --show-only templates/monitoring.yaml | awk 'BEGIN{RS="---\n"} /\nkind: Service\n/{printf "---\n%s", $0}' |
    kubectl create --dry-run=server -n default -o json -f - 2>&1); then
    fail chart-monitoring/service-monitors "the metrics Services are refused: $(error_line "$services")"
  elif [[ $(jq -rs '[.[] | (.items // [.])[] | "\(.metadata.name) \(.spec.clusterIP) \(.spec.ports[0].name) \(.spec.ports[0].targetPort)"] | sort | join(",")' <<<"$services") != \
    "$rel-lvs-operator-agent-metrics None metrics metrics,$rel-lvs-operator-operator-metrics None metrics metrics" ]]; then
    fail chart-monitoring/service-monitors "unexpected metrics Services: $(jq -c '.' <<<"$services" | head -c 400)"
  else
    pass chart-monitoring/service-monitors
  fi

  rc=0
  out=$(helm template "$rel" "$chart" --set metrics.podMonitor.enabled=true --set metrics.serviceMonitor.enabled=true 2>&1) || rc=$?
  if ((rc == 0)); then
    fail chart-monitoring/not-both "podMonitor and serviceMonitor both enabled rendered without error"
  elif ! grep -q 'enable one' <<<"$out"; then
    fail chart-monitoring/not-both "refused, but not with the chart's message: $(error_line "$out")"
  else
    pass chart-monitoring/not-both
  fi

  local cm
  if ! cm=$(helm template "$rel" "$chart" -n default --set dashboards.enabled=true \
    --show-only templates/dashboards.yaml | kubectl create --dry-run=server -n default -o json -f - 2>&1); then
    fail chart-monitoring/dashboard "the dashboard ConfigMap is refused: $(error_line "$cm")"
  elif [[ $(jq -r '.metadata.labels.grafana_dashboard' <<<"$cm") != 1 ]]; then
    fail chart-monitoring/dashboard "the ConfigMap lacks the label grafana_dashboard=1: $(jq -c '.metadata.labels' <<<"$cm")"
  elif ! jq -e --slurpfile want "$chart/dashboards/lvs-operator.json" \
    '(.data["lvs-operator.json"] | fromjson) == $want[0]' <<<"$cm" >/dev/null; then
    fail chart-monitoring/dashboard "the ConfigMap's lvs-operator.json differs from dashboards/lvs-operator.json"
  else
    pass chart-monitoring/dashboard
  fi
}
