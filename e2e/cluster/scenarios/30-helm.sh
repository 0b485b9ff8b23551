# The Helm chart against the real API server: lint, install (its crds/ become
# Established), the workloads' security settings, upgrade, uninstall (the CRDs
# stay, as Helm does with crds/). No kubelet runs, so the Deployment and the
# DaemonSet never get pods; the objects themselves are what is checked.

scenario helm t_helm
t_helm() {
  local chart out rc
  chart=$(lvs_chart)

  rc=0; out=$(helm lint --strict "$chart" 2>&1) || rc=$?
  if ((rc != 0)); then
    fail helm/lint "$(grep -m1 -E '\[(ERROR|WARNING)\]' <<<"$out" || error_line "$out")"
  elif grep -qE '\[(ERROR|WARNING)\]' <<<"$out"; then
    fail helm/lint "$(grep -m1 -E '\[(ERROR|WARNING)\]' <<<"$out")"
  else
    pass helm/lint
  fi

  # Earlier scenarios may have applied crds/ directly; remove them so that the
  # chart's own crds/ are what gets installed and judged.
  kubectl delete --ignore-not-found --wait --timeout 60s "${lvs_crds[@]/#/crd/}"

  rc=0; out=$(helm install "$lvs_release" "$chart" -n "$lvs_ns" --create-namespace -f "$(lvs_lab_values)" 2>&1) || rc=$?
  if ((rc != 0)); then
    fail helm/install "$(error_line "$out")"
    return 0
  fi
  local status
  status=$(helm status "$lvs_release" -n "$lvs_ns" -o json | jq -r '.info.status + " rev " + (.version|tostring)')
  if [[ $status != "deployed rev 1" ]]; then
    fail helm/install "release is '$status', expected 'deployed rev 1'"
  else
    pass helm/install
  fi

  local crd missing=()
  for crd in "${lvs_crds[@]}"; do
    kubectl get crd "$crd" >/dev/null 2>&1 || missing+=("$crd")
  done
  if ((${#missing[@]})); then
    fail helm/crds-established "not created by the chart: ${missing[*]}"
  elif ! out=$(kubectl wait --for condition=Established --timeout 60s "${lvs_crds[@]/#/crd/}" 2>&1); then
    fail helm/crds-established "$(error_line "$out")"
  else
    pass helm/crds-established
  fi

  check_agent_daemonset
  check_operator_deployment
  check_memory_limits
  check_pod_security

  # Upgrade: a changed value reaches the objects, the release moves to rev 2.
  local op=$lvs_release-lvs-operator-operator ag=$lvs_release-lvs-operator-agent
  rc=0; out=$(helm upgrade "$lvs_release" "$chart" -n "$lvs_ns" --reuse-values \
    --set operator.replicas=1 --set agent.logFormat=text 2>&1) || rc=$?
  local replicas args
  replicas=$(kubectl get deploy "$op" -n "$lvs_ns" -o jsonpath='{.spec.replicas}')
  args=$(kubectl get ds "$ag" -n "$lvs_ns" -o jsonpath='{.spec.template.spec.containers[0].args}')
  status=$(helm status "$lvs_release" -n "$lvs_ns" -o json | jq -r '.info.status + " rev " + (.version|tostring)')
  if ((rc != 0)); then
    fail helm/upgrade "$(error_line "$out")"
  elif [[ $status != "deployed rev 2" ]]; then
    fail helm/upgrade "release is '$status' after the upgrade, expected 'deployed rev 2'"
  elif [[ $replicas != 1 ]]; then
    fail helm/upgrade "operator Deployment has replicas=$replicas after --set operator.replicas=1"
  elif [[ $args != *'--log-format=text'* ]]; then
    fail helm/upgrade "agent DaemonSet args lack --log-format=text after the upgrade: $args"
  else
    pass helm/upgrade
  fi

  # Uninstall: every object of the release goes, the CRDs stay.
  rc=0; out=$(helm uninstall "$lvs_release" -n "$lvs_ns" --wait --timeout 60s 2>&1) || rc=$?
  local left kept=()
  left=$(kubectl get deploy,ds,sa,role,rolebinding -n "$lvs_ns" -l "app.kubernetes.io/instance=$lvs_release" -o name 2>/dev/null)
  left+=$(kubectl get clusterrole,clusterrolebinding,validatingadmissionpolicy,validatingadmissionpolicybinding \
    -l "app.kubernetes.io/instance=$lvs_release" -o name 2>/dev/null)
  for crd in "${lvs_crds[@]}"; do
    kubectl get crd "$crd" >/dev/null 2>&1 && kept+=("$crd")
  done
  if ((rc != 0)); then
    fail helm/uninstall "$(error_line "$out")"
  elif helm status "$lvs_release" -n "$lvs_ns" >/dev/null 2>&1; then
    fail helm/uninstall "release $lvs_release still listed after uninstall"
  elif [[ -n $left ]]; then
    fail helm/uninstall "objects left behind: $(tr '\n' ' ' <<<"$left")"
  elif ((${#kept[@]} != ${#lvs_crds[@]})); then
    fail helm/uninstall "CRDs must survive an uninstall; only kept: ${kept[*]:-none}"
  else
    pass helm/uninstall
  fi
}

# The agent: host network, NET_ADMIN as its only capability, not privileged,
# read-only root filesystem, the runtime's default seccomp profile, hostPath
# only for its state dir and /proc/sys/net.
check_agent_daemonset() {
  local ds=$lvs_release-lvs-operator-agent spec out
  if ! spec=$(kubectl get ds "$ds" -n "$lvs_ns" -o json 2>&1); then
    fail helm/agent-daemonset "$(error_line "$spec")"
    return 0
  fi
  out=$(jq -r --arg sa "$(lvs_sa agent)" '.spec.template.spec as $p | [
      (if $p.hostNetwork == true then empty else "hostNetwork is not true" end),
      (if ($p.hostPID // false) or ($p.hostIPC // false) then "hostPID/hostIPC set" else empty end),
      (if $p.serviceAccountName == $sa then empty else "serviceAccountName is \($p.serviceAccountName), expected \($sa)" end),
      ($p.containers[] | .name as $n | .securityContext as $s | (
        (if ($s.privileged // false) then "\($n): privileged" else empty end),
        (if ($s.seccompProfile.type // $p.securityContext.seccompProfile.type // "") == "RuntimeDefault" then empty
          else "\($n): seccompProfile is \($s.seccompProfile // $p.securityContext.seccompProfile), expected RuntimeDefault" end),
        (if $s.allowPrivilegeEscalation == false then empty else "\($n): allowPrivilegeEscalation not false" end),
        (if $s.readOnlyRootFilesystem == true then empty else "\($n): readOnlyRootFilesystem not true" end),
        (if ($s.capabilities.add // []) == ["NET_ADMIN"] then empty else "\($n): capabilities.add is \($s.capabilities.add), expected [NET_ADMIN]" end),
        (if ($s.capabilities.drop // []) | index("ALL") then empty else "\($n): capabilities.drop lacks ALL" end))),
      ([$p.volumes[]? | .hostPath.path // empty] | sort | if . == ["/proc/sys/net", "/var/lib/lvs-agent"] then empty
        else "hostPath volumes are \(.), expected exactly /proc/sys/net and /var/lib/lvs-agent" end)
    ] | .[]' <<<"$spec")
  if [[ -n $out ]]; then
    fail helm/agent-daemonset "$(paste -sd';' <<<"$out")"
  else
    pass helm/agent-daemonset
  fi
}

# The operator: non-root, no privilege escalation, no capabilities, no host
# access, the runtime's default seccomp profile.
check_operator_deployment() {
  local d=$lvs_release-lvs-operator-operator spec out
  if ! spec=$(kubectl get deploy "$d" -n "$lvs_ns" -o json 2>&1); then
    fail helm/operator-deployment "$(error_line "$spec")"
    return 0
  fi
  out=$(jq -r --arg sa "$(lvs_sa operator)" '.spec.template.spec as $p | [
      (if $p.securityContext.runAsNonRoot == true then empty else "runAsNonRoot is not true" end),
      (if ($p.securityContext.runAsUser // 0) != 0 then empty else "runAsUser is 0 or unset" end),
      (if ($p.hostNetwork // false) or ($p.hostPID // false) or ($p.hostIPC // false) then "uses a host namespace" else empty end),
      (if [$p.volumes[]? | select(.hostPath)] == [] then empty else "mounts a hostPath" end),
      (if $p.serviceAccountName == $sa then empty else "serviceAccountName is \($p.serviceAccountName), expected \($sa)" end),
      ($p.containers[] | .name as $n | .securityContext as $s | (
        (if ($s.privileged // false) then "\($n): privileged" else empty end),
        (if ($s.seccompProfile.type // $p.securityContext.seccompProfile.type // "") == "RuntimeDefault" then empty
          else "\($n): seccompProfile is \($s.seccompProfile // $p.securityContext.seccompProfile), expected RuntimeDefault" end),
        (if ($s.runAsUser // 1) == 0 then "\($n): runAsUser 0" else empty end),
        (if $s.allowPrivilegeEscalation == false then empty else "\($n): allowPrivilegeEscalation not false" end),
        (if $s.readOnlyRootFilesystem == true then empty else "\($n): readOnlyRootFilesystem not true" end),
        (if ($s.capabilities.add // []) == [] then empty else "\($n): adds capabilities \($s.capabilities.add)" end),
        (if ($s.capabilities.drop // []) | index("ALL") then empty else "\($n): capabilities.drop lacks ALL" end)))
    ] | .[]' <<<"$spec")
  if [[ -n $out ]]; then
    fail helm/operator-deployment "$(paste -sd';' <<<"$out")"
  else
    pass helm/operator-deployment
  fi
}

# mebibytes QUANTITY -> a memory quantity (Ki, Mi, Gi, k, M, G or bytes) in
# whole MiB, rounded down.
mebibytes() {
  local q=$1 n
  n=${q%%[!0-9]*}
  case ${q#"$n"} in
    Ki) echo $((n / 1024)) ;;
    Mi) echo "$n" ;;
    Gi) echo $((n * 1024)) ;;
    k) echo $((n * 1000 / 1048576)) ;;
    M) echo $((n * 1000000 / 1048576)) ;;
    G) echo $((n * 1000000000 / 1048576)) ;;
    "") echo $((n / 1048576)) ;;
    *) echo "mebibytes: unknown unit in '$q'" >&2; return 1 ;;
  esac
}

# The default memory limits hold the scale the READMEs document, 10k
# VirtualServices x 10 real servers: the agent's peak is 165 MiB in Kubernetes
# mode (README, Performance), the operator's 176 MiB in the cluster lab
# (charts/lvs-operator/README.md, "Sizing the agent", "Sizing the operator").
check_memory_limits() {
  local what who kind name peak limit mib
  for what in "agent ds $lvs_release-lvs-operator-agent 165" "operator deploy $lvs_release-lvs-operator-operator 176"; do
    read -r who kind name peak <<<"$what"
    limit=$(kubectl get "$kind" "$name" -n "$lvs_ns" -o jsonpath='{.spec.template.spec.containers[0].resources.limits.memory}')
    if [[ -z $limit ]]; then
      fail "helm/$who-memory-limit" "the $who container has no memory limit"
    elif ! mib=$(mebibytes "$limit"); then
      fail "helm/$who-memory-limit" "cannot read the $who memory limit '$limit'"
    elif ((mib <= peak)); then
      fail "helm/$who-memory-limit" "limit $limit is at or below the documented ${peak} MiB peak at 10k x 10: the $who would be OOM-killed"
    else
      pass "helm/$who-memory-limit"
    fi
  done
}

# Pod Security admission on pods made from the chart's own pod templates
# (server-side dry run, so nothing is created): the agent needs the
# "privileged" level and is refused under "baseline"; the operator meets
# "restricted". This is what the chart README tells users to label.
check_pod_security() {
  local level ns kind out rc
  for level in privileged baseline restricted; do
    ns=pss-$level
    kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
    kubectl label namespace "$ns" --overwrite "pod-security.kubernetes.io/enforce=$level" \
      pod-security.kubernetes.io/enforce-version=latest
    for kind in agent operator; do
      kubectl get serviceaccount "$(lvs_sa "$kind")" -n "$ns" >/dev/null 2>&1 ||
        kubectl create serviceaccount "$(lvs_sa "$kind")" -n "$ns"
    done
  done
  # pss_pod KIND(ds|deploy) NAME NAMESPACE -> create --dry-run=server a Pod with the template's spec
  pss_pod() {
    kubectl get "$1" "$2" -n "$lvs_ns" -o json |
      jq --arg ns "$3" '{apiVersion: "v1", kind: "Pod", metadata: {name: "pss-probe", namespace: $ns}, spec: .spec.template.spec}' |
      kubectl create --dry-run=server -f - 2>&1
  }
  local ds=$lvs_release-lvs-operator-agent deploy=$lvs_release-lvs-operator-operator

  rc=0; out=$(pss_pod ds "$ds" pss-privileged) || rc=$?
  if ((rc == 0)); then
    pass helm/pod-security-agent-privileged
  else
    fail helm/pod-security-agent-privileged "the agent pod is refused in a namespace with enforce=privileged: $(error_line "$out")"
  fi

  rc=0; out=$(pss_pod ds "$ds" pss-baseline) || rc=$?
  if ((rc == 0)); then
    fail helm/pod-security-agent-baseline-refused "the agent pod was admitted under enforce=baseline; the chart README says it needs privileged"
  elif grep -q 'violates PodSecurity "baseline' <<<"$out" && grep -q hostNetwork <<<"$out" && grep -q NET_ADMIN <<<"$out"; then
    pass helm/pod-security-agent-baseline-refused
  else
    fail helm/pod-security-agent-baseline-refused "refused, but not by Pod Security for hostNetwork and NET_ADMIN: $(error_line "$out")"
  fi

  rc=0; out=$(pss_pod deploy "$deploy" pss-restricted) || rc=$?
  if ((rc == 0)) && ! grep -qi warning <<<"$out"; then
    pass helm/pod-security-operator-restricted
  else
    fail helm/pod-security-operator-restricted "the operator pod under enforce=restricted (exit $rc): $(first_line "$out")"
  fi

  kubectl delete namespace pss-privileged pss-baseline pss-restricted --wait=false >/dev/null 2>&1 || true
}
