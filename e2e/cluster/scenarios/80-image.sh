# The operator from the lab container image (e2e/image/build.sh: the Dockerfile's
# `lab` stage, the shipped layout on scratch) run by podman the way the chart
# runs it: the installed Deployment's command, args and securityContext (pod
# and container level, mapped to podman flags; a setting this scenario cannot
# map fails it), the ServiceAccount token, CA and namespace mounted read-only
# where in-cluster config looks for them, KUBERNETES_SERVICE_HOST/PORT naming
# the lab API server. Host network, so 127.0.0.1 is the lab API server; the
# listen address is moved to a free loopback port for the same reason.
#
# It must take the leader Lease, write status on a VirtualService and a
# RealServer, let a deletion through at once, and stop cleanly on SIGTERM as PID 1.

# This file runs alone too (run-suite.sh 80-image), so it does not lean on
# 60-operator.sh's helpers.
img_vs=virtualservices.lvs.lvs-operator.io
img_rs=realservers.lvs.lvs-operator.io

# img_wait SECONDS JQ KUBECTL-GET-ARGS... -> poll until JQ (jq -e) holds on
# `kubectl get -o json ARGS`; the last JSON seen stays in $img_last.
img_wait() {
  local deadline=$((SECONDS + $1)) expr=$2
  shift 2
  while :; do
    img_last=$(kubectl get -o json "$@" 2>&1) || true
    jq -e "$expr" <<<"$img_last" >/dev/null 2>&1 && return 0
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
img_lease_holder() {
  kubectl get lease lvs-operator-leader -n "$lvs_ns" -o jsonpath='{.spec.holderIdentity}' 2>/dev/null || true
}

# img_security_args DEPLOYMENT-JSON -> podman flags for the operator
# container's effective securityContext, one per line; exits 1 naming the
# settings it has no mapping for.
img_security_args() {
  jq -r '
    .spec.template.spec as $p
    | ($p.containers[] | select(.name == "operator")) as $c
    | ($p.securityContext // {}) as $ps | ($c.securityContext // {}) as $cs
    | ($ps * $cs) as $s
    | ([$ps | keys[] | select(IN("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile") | not)]
       + [$cs | keys[] | select(IN("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile",
            "allowPrivilegeEscalation", "readOnlyRootFilesystem", "capabilities", "privileged") | not)]
       + (if ($s.seccompProfile.type // "RuntimeDefault") | IN("RuntimeDefault", "Unconfined") then []
          else ["seccompProfile.type \($s.seccompProfile.type)"] end)) as $unmapped
    | if ($unmapped | length) > 0 then error("no podman mapping for securityContext \($unmapped | join(", "))") else . end
    | (if $s.runAsUser != null then "--user=\($s.runAsUser)\(if $s.runAsGroup != null then ":\($s.runAsGroup)" else "" end)" else empty end),
      (if $s.readOnlyRootFilesystem then "--read-only", "--read-only-tmpfs=false" else empty end),
      (if $s.allowPrivilegeEscalation == false then "--security-opt=no-new-privileges" else empty end),
      (if $s.privileged then "--privileged" else empty end),
      ($s.capabilities.drop // [] | .[] | "--cap-drop=\(.)"),
      ($s.capabilities.add // [] | .[] | "--cap-add=\(.)"),
      (if $s.seccompProfile.type == "Unconfined" then "--security-opt=seccomp=unconfined" else empty end)
  ' <<<"$1"
}

# img_proc_problems PID DEPLOYMENT-JSON -> what in /proc/PID contradicts the
# chart's securityContext, one line each (nothing when all holds).
img_proc_problems() {
  local pid=$1 dep=$2 st s want
  st=$(cat "/proc/$pid/status") || { echo "no /proc/$pid/status"; return; }
  s=$(jq -c '.spec.template.spec as $p | ($p.securityContext // {}) * (($p.containers[] | select(.name == "operator")).securityContext // {})' <<<"$dep")
  want=$(jq -r '.runAsUser // empty' <<<"$s")
  if [[ -n $want ]] && [[ $(awk '/^Uid:/ {print $2, $3, $4, $5}' <<<"$st") != "$want $want $want $want" ]]; then
    echo "uids $(awk '/^Uid:/ {print $2, $3, $4, $5}' <<<"$st"), expected $want (runAsUser)"
  fi
  want=$(jq -r '.runAsGroup // empty' <<<"$s")
  if [[ -n $want ]] && [[ $(awk '/^Gid:/ {print $2, $3, $4, $5}' <<<"$st") != "$want $want $want $want" ]]; then
    echo "gids $(awk '/^Gid:/ {print $2, $3, $4, $5}' <<<"$st"), expected $want (runAsGroup)"
  fi
  if [[ $(jq -r '.runAsNonRoot // false' <<<"$s") == true ]] && [[ $(awk '/^Uid:/ {print $3}' <<<"$st") == 0 ]]; then
    echo "runs as uid 0 although runAsNonRoot is set"
  fi
  if jq -e '(.capabilities.drop // []) | index("ALL")' <<<"$s" >/dev/null && [[ -z $(jq -r '.capabilities.add // [] | .[]' <<<"$s") ]]; then
    local c
    for c in CapInh CapPrm CapEff CapBnd CapAmb; do
      [[ $(awk -v c="$c:" '$1 == c {print $2}' <<<"$st") == 0000000000000000 ]] ||
        echo "$c is $(awk -v c="$c:" '$1 == c {print $2}' <<<"$st") although capabilities.drop is [ALL]"
    done
  fi
  if [[ $(jq -r '.allowPrivilegeEscalation' <<<"$s") == false ]] && [[ $(awk '/^NoNewPrivs:/ {print $2}' <<<"$st") != 1 ]]; then
    echo "NoNewPrivs is $(awk '/^NoNewPrivs:/ {print $2}' <<<"$st") although allowPrivilegeEscalation is false"
  fi
  if [[ $(jq -r '.seccompProfile.type // ""' <<<"$s") == RuntimeDefault ]] && [[ $(awk '/^Seccomp:/ {print $2}' <<<"$st") != 2 ]]; then
    echo "Seccomp mode is $(awk '/^Seccomp:/ {print $2}' <<<"$st"), expected 2 (a filter) for seccompProfile RuntimeDefault"
  fi
  if [[ $(jq -r '.readOnlyRootFilesystem // false' <<<"$s") == true ]]; then
    local opts
    opts=$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -n 1)
    [[ $opts == ro || $opts == ro,* ]] || echo "the root file system is mounted '$opts', expected read-only"
  fi
}

scenario image-operator-runs t_image_operator
t_image_operator() {
  local name=image-operator-runs
  # shellcheck source=../../lib/common.sh
  source "$LVS_REPO/e2e/lib/common.sh"
  # shellcheck source=../../lib/image.sh
  source "$LVS_REPO/e2e/lib/image.sh"

  # --- the image (built or reused: the build is cached by the binaries' hash)
  local ref err
  if ! ref=$("$LVS_REPO/e2e/image/build.sh" 2>"$LVS_LAB_DIR/image-build.log"); then
    fail "$name" "e2e/image/build.sh failed: $(tail -n 1 "$LVS_LAB_DIR/image-build.log") (log: $LVS_LAB_DIR/image-build.log)"
    return 0
  fi
  if ! err=$(lvs_image_check 2>&1); then
    fail "$name" "$err"
    return 0
  fi
  echo "image: $ref"

  # --- what the chart's Deployment runs ------------------------------------
  ensure_release
  local dep
  dep=$(kubectl get deployments -n "$lvs_ns" -l app.kubernetes.io/component=operator -o json | jq '.items[0] // empty')
  if [[ -z $dep ]]; then
    fail "$name" "no operator Deployment (label app.kubernetes.io/component=operator) in $lvs_ns after helm install"
    return 0
  fi
  local sec=() line
  if ! line=$(img_security_args "$dep" 2>&1); then
    fail "$name" "chart's operator securityContext: $(first_line "$line")"
    return 0
  fi
  mapfile -t sec <<<"$line"
  echo "securityContext as podman flags: ${sec[*]}"
  local port entrypoint args=() a
  port=18480
  while [[ -n $(ss -Hltn "sport = :$port") ]]; do port=$((port + 1)); done
  entrypoint=$(jq -c '.spec.template.spec.containers[] | select(.name == "operator") | .command // empty' <<<"$dep")
  while IFS= read -r a; do
    a=${a//\$(POD_NAMESPACE)/$lvs_ns}
    [[ $a == --listen=* ]] && a="--listen=127.0.0.1:$port"
    args+=("$a")
  done < <(jq -r '.spec.template.spec.containers[] | select(.name == "operator") | .args // [] | .[]' <<<"$dep")
  echo "entrypoint: ${entrypoint:-the image ENTRYPOINT}, args: ${args[*]}"

  # --- the ServiceAccount volume, as the kubelet projects it ----------------
  local sa_dir=$LVS_LAB_DIR/image-operator-sa user
  user=$(jq -r '.spec.template.spec as $p | (($p.securityContext // {}) * (($p.containers[] | select(.name == "operator")).securityContext // {})) | "\(.runAsUser // 65532):\(.runAsGroup // 65532)"' <<<"$dep")
  rm -rf "$sa_dir" && mkdir -p "$sa_dir"
  kubectl create token "$(lvs_sa operator)" -n "$lvs_ns" --duration 1h >"$sa_dir/token"
  cp "$LVS_LAB_CA" "$sa_dir/ca.crt"
  printf '%s' "$lvs_ns" >"$sa_dir/namespace"
  chown -R "$user" "$sa_dir"
  chmod 0400 "$sa_dir"/*
  chmod 0500 "$sa_dir"
  local api_host=${LVS_LAB_APISERVER#https://}
  api_host=${api_host%%/*}

  img_cname=lvs-lab-image-operator-$$
  local cname=$img_cname pod=image-op-$$
  kubectl delete lease lvs-operator-leader -n "$lvs_ns" --ignore-not-found
  trap 'lvs_podman rm -f "${img_cname:-}" >/dev/null 2>&1 || true' EXIT
  trap 'exit 143' TERM INT
  local run=(run -d --name "$cname" --pull never "${lvs_podman_ulimits[@]}" --network host "${sec[@]}"
    -v "$sa_dir:/var/run/secrets/kubernetes.io/serviceaccount:ro"
    -e "POD_NAME=$pod" -e "POD_NAMESPACE=$lvs_ns" -e RUST_LOG=info
    -e "KUBERNETES_SERVICE_HOST=${api_host%:*}" -e "KUBERNETES_SERVICE_PORT=${api_host##*:}")
  [[ -n $entrypoint ]] && run+=(--entrypoint "$entrypoint")
  echo "podman ${run[*]} $LVS_IMAGE ${args[*]}"
  if ! err=$(lvs_podman "${run[@]}" "$LVS_IMAGE" "${args[@]}" 2>&1); then
    fail "$name" "podman run failed: $(error_line "$err")"
    return 0
  fi
  img_logs() { lvs_podman logs "$cname" 2>&1 | tail -n "${1:-3}" | tr '\n' ' '; }

  # --- it runs with the chart's settings ------------------------------------
  local pid problems
  sleep 1
  pid=$(lvs_podman inspect -f '{{.State.Pid}}' "$cname" 2>/dev/null || true)
  if [[ -z $pid || $pid == 0 ]]; then
    fail "$name" "the container exited at once: $(img_logs 5)"
    return 0
  fi
  problems=$(img_proc_problems "$pid" "$dep")
  if [[ -n $problems ]]; then
    fail "$name" "the operator process does not run with the chart's securityContext: $(paste -sd';' <<<"$problems")"
    return 0
  fi
  echo "ok: pid $pid: $(grep -E '^(Uid|Gid|CapEff|CapBnd|NoNewPrivs|Seccomp):' "/proc/$pid/status" | tr -s '\t' ' ' | paste -sd';')"

  # --- it leads ------------------------------------------------------------
  if ! retry 60 bash -c '[[ $(curl -fsS "http://127.0.0.1:$1/readyz") ]] && [[ $(kubectl get lease lvs-operator-leader -n "$2" -o jsonpath="{.spec.holderIdentity}") == "$3" ]]' _ "$port" "$lvs_ns" "$pod"; then
    fail "$name" "within 60s: /readyz '$(curl -sS "http://127.0.0.1:$port/readyz" 2>&1 | head -c 200)', lease holder '$(img_lease_holder)' (expected $pod), log: $(img_logs)"
    return 0
  fi
  echo "ok: $pod holds the lease and is ready"

  # --- it writes status ----------------------------------------------------
  kubectl create namespace image-lab --dry-run=client -o yaml | kubectl apply -f -
  kubectl apply -f - <<'YAML'
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: VirtualService
metadata: {name: image-web, namespace: image-lab}
spec:
  address: 192.0.2.60
  port: 8080
  protocol: TCP
  scheduler: rr
  forwarding: NAT
  directors: {nodeSelector: {matchLabels: {lvs.lvs-operator.io/director: "true"}}}
  realServerSelector: {matchLabels: {app: image-web}}
---
apiVersion: lvs.lvs-operator.io/v1alpha1
kind: RealServer
metadata: {name: image-web-1, namespace: image-lab, labels: {app: image-web}}
spec: {address: 10.10.0.61, port: 80}
YAML
  if ! img_wait 30 '.status.observedGeneration == .metadata.generation and ([.status.conditions[]? | select(.type == "Ready")][0].status == "True") and .status.realServers.selected == 1' "$img_vs" image-web -n image-lab; then
    fail "$name" "image-lab/image-web not Ready with 1 realserver within 30s: status $(jq -c .status <<<"$img_last" 2>/dev/null || first_line "$img_last"); log: $(img_logs)"
    return 0
  fi
  if ! img_wait 15 '(.status.selectedBy // []) == ["image-lab/image-web"]' "$img_rs" image-web-1 -n image-lab; then
    fail "$name" "image-lab/image-web-1 status: $(jq -c .status <<<"$img_last" 2>/dev/null || first_line "$img_last")"
    return 0
  fi
  local logs
  logs=$(lvs_podman logs "$cname" 2>&1 || true)
  if ! grep -Eq 'status written.*image-web' <<<"$logs"; then
    fail "$name" "statuses are current, but the container's log shows no status write for image-web: $(img_logs)"
    return 0
  fi
  echo "ok: status written on image-lab/image-web and image-lab/image-web-1"

  # --- a deletion goes through (no finalizer holds it) ----------------------
  kubectl delete "$img_vs" image-web -n image-lab --wait=false
  if ! retry 20 bash -c '! kubectl get "$1" image-web -n image-lab >/dev/null 2>&1' _ "$img_vs"; then
    fail "$name" "image-lab/image-web still exists 20s after delete: finalizers $(kubectl get "$img_vs" image-web -n image-lab -o jsonpath='{.metadata.finalizers}' 2>&1)"
    return 0
  fi

  # --- SIGTERM to PID 1: a clean exit that releases the lease ---------------
  local t0=$SECONDS rc holder
  lvs_podman stop -t 10 "$cname" >/dev/null 2>&1 || true
  rc=$(lvs_podman inspect -f '{{.State.ExitCode}}' "$cname" 2>/dev/null || echo '?')
  holder=$(img_lease_holder)
  if [[ $rc != 0 ]]; then
    fail "$name" "podman stop (SIGTERM to PID 1): exit status $rc after $((SECONDS - t0))s, expected 0 (a status of 137 means SIGKILL after 10s): $(img_logs)"
  elif [[ -n $holder ]]; then
    fail "$name" "the container stopped cleanly but the lease still names '$holder'"
  else
    pass "$name"
  fi
  kubectl delete namespace image-lab --ignore-not-found --wait=false
}
