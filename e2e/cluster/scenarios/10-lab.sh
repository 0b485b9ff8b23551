# Lab self-checks: the API server answers, RBAC is enforced, TokenRequest works,
# helm reaches the cluster, a CRD becomes Established and validates.

selfcheck_ns=lab-selfcheck

scenario lab-apiserver t_lab_apiserver
t_lab_apiserver() {
  local out rc=0
  out=$(kubectl get --raw '/readyz?verbose' 2>&1) || rc=$?
  if ((rc == 0)) && grep -q '^readyz check passed' <<<"$out"; then
    pass lab/apiserver-ready
  else
    fail lab/apiserver-ready "/readyz: $(error_line "$out")"
  fi

  # Guests on qemu user networking reach this listener as 10.0.2.2 (slirp
  # forwards to host loopback); the serving certificate must verify for that IP.
  local hostport=${LVS_LAB_APISERVER#https://}
  local vmhostport=${LVS_LAB_APISERVER_VM#https://}
  rc=0; out=$(curl -sS --cacert "$LVS_LAB_CA" --cert "$LVS_LAB_DIR/pki/admin.crt" --key "$LVS_LAB_DIR/pki/admin.key" \
    --connect-to "$vmhostport:$hostport" "$LVS_LAB_APISERVER_VM/readyz" 2>&1) || rc=$?
  if ((rc == 0)) && [[ $out == ok ]]; then
    pass lab/vm-address-tls
  else
    fail lab/vm-address-tls "$LVS_LAB_APISERVER_VM/readyz (via $hostport) with the lab CA: $(first_line "$out")"
  fi

  local v cminor sminor sver
  v=$(kubectl version -o json)
  cminor=$(jq -r '.clientVersion.minor' <<<"$v")
  sminor=$(jq -r '.serverVersion.minor' <<<"$v")
  sver=$(jq -r '.serverVersion.gitVersion' <<<"$v")
  if [[ $sver != "$LVS_KUBE_VERSION" ]]; then
    fail lab/version "server reports $sver, expected $LVS_KUBE_VERSION"
  elif [[ ! $cminor =~ ^[0-9]+$ || ! $sminor =~ ^[0-9]+$ ]] || ((cminor - sminor > 1 || sminor - cminor > 1)); then
    fail lab/version "kubectl minor '$cminor' vs server minor '$sminor': outside the supported skew of one minor"
  else
    pass lab/version
  fi
}

scenario lab-rbac t_lab_rbac
t_lab_rbac() {
  kubectl create namespace "$selfcheck_ns"
  kubectl create serviceaccount nobody -n "$selfcheck_ns"
  local as=system:serviceaccount:$selfcheck_ns:nobody out rc

  # Admin (system:masters) may; an unbound ServiceAccount may not.
  rc=0; out=$(kubectl auth can-i get secrets -n "$selfcheck_ns" 2>&1) || rc=$?
  local admin_ok=$out
  rc=0; out=$(kubectl auth can-i get secrets -n "$selfcheck_ns" --as "$as" 2>&1) || rc=$?
  if [[ $admin_ok != yes ]]; then
    fail lab/rbac-can-i "admin can-i get secrets answered '$admin_ok', expected 'yes'"
  elif [[ $out != no || $rc == 0 ]]; then
    fail lab/rbac-can-i "unbound $as can-i get secrets answered '$out' (exit $rc), expected 'no'"
  else
    pass lab/rbac-can-i
  fi

  # TokenRequest: a signed token for the ServiceAccount, accepted by TokenReview.
  local token claims sub iss
  rc=0; token=$(kubectl create token nobody -n "$selfcheck_ns" --duration 1h 2>&1) || rc=$?
  if ((rc != 0)) || [[ $token != *.*.* ]]; then
    fail lab/tokenrequest "kubectl create token: $(error_line "$token")"
  else
    claims=$(jwt_claims "$token")
    sub=$(jq -r .sub <<<"$claims")
    iss=$(jq -r .iss <<<"$claims")
    local review authn user
    review=$(kubectl create -o json -f - <<<"{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{\"token\":\"$token\"}}")
    authn=$(jq -r .status.authenticated <<<"$review")
    user=$(jq -r .status.user.username <<<"$review")
    if [[ $sub != "$as" ]]; then
      fail lab/tokenrequest "token sub is '$sub', expected '$as'"
    elif [[ $iss != "$LVS_LAB_SA_ISSUER" ]]; then
      fail lab/tokenrequest "token iss is '$iss', expected '$LVS_LAB_SA_ISSUER'"
    elif [[ $authn != true || $user != "$as" ]]; then
      fail lab/tokenrequest "TokenReview says authenticated=$authn user=$user, expected true and $as"
    else
      pass lab/tokenrequest
    fi
  fi

  # The same ServiceAccount through a real token: authenticated but forbidden,
  # then allowed once a Role grants it.
  local kc=$LVS_LAB_DIR/nobody.kubeconfig who
  "$LVS_E2E_CLUSTER/sa-kubeconfig.sh" "$selfcheck_ns" nobody "$kc"
  who=$(kubectl --kubeconfig "$kc" auth whoami -o jsonpath='{.status.userInfo.username}')
  rc=0; out=$(kubectl --kubeconfig "$kc" get secrets -n "$selfcheck_ns" 2>&1) || rc=$?
  if [[ $who != "$as" ]]; then
    fail lab/rbac-token-refused "sa-kubeconfig.sh token authenticates as '$who', expected '$as'"
  elif ((rc == 0)); then
    fail lab/rbac-token-refused "unbound $as could list secrets"
  elif ! grep -q 'Forbidden' <<<"$out"; then
    fail lab/rbac-token-refused "refused, but not by authorization: $(error_line "$out")"
  else
    pass lab/rbac-token-refused
  fi

  kubectl create role secret-reader -n "$selfcheck_ns" --verb get,list --resource secrets
  kubectl create rolebinding nobody-secret-reader -n "$selfcheck_ns" --role secret-reader --serviceaccount "$selfcheck_ns:nobody"
  if retry 15 kubectl --kubeconfig "$kc" get secrets -n "$selfcheck_ns"; then
    # Only what the Role grants: still no access in another namespace.
    rc=0; out=$(kubectl --kubeconfig "$kc" get secrets -n default 2>&1) || rc=$?
    if ((rc == 0)); then
      fail lab/rbac-token-granted "Role in $selfcheck_ns also granted secrets in default"
    else
      pass lab/rbac-token-granted
    fi
  else
    fail lab/rbac-token-granted "$as still cannot list secrets 15s after a RoleBinding granted it"
  fi
}

scenario lab-helm t_lab_helm
t_lab_helm() {
  local v rc=0 out
  v=$(helm version --template '{{.Version}}')
  out=$(helm list --all-namespaces -o json 2>&1) || rc=$?
  if [[ $v != "$LVS_HELM_VERSION" ]]; then
    fail lab/helm "helm version is '$v', expected '$LVS_HELM_VERSION'"
  elif ((rc != 0)) || [[ $(jq -r 'length' <<<"$out" 2>/dev/null) != 0 ]]; then
    fail lab/helm "helm list against the lab: $(error_line "$out")"
  else
    pass lab/helm
  fi
}

scenario lab-crd t_lab_crd
t_lab_crd() {
  local crd=$LVS_E2E_CLUSTER/testdata/throwaway-crd.yaml name rc out
  name=$(kubectl apply --server-side -f "$crd" -o name)
  if ! kubectl wait --for condition=Established --timeout 60s "$name"; then
    fail lab/crd-established "$name not Established within 60s"
    return 0
  fi
  pass lab/crd-established

  kubectl get namespace "$selfcheck_ns" >/dev/null 2>&1 || kubectl create namespace "$selfcheck_ns"
  rc=0; out=$(kubectl apply --server-side -n "$selfcheck_ns" -f - 2>&1 <<'YAML'
apiVersion: selfcheck.lab.lvs.test/v1
kind: Widget
metadata: {name: ok}
spec: {port: 80, mode: nat, targetPort: 8080}
YAML
) || rc=$?
  if ((rc != 0)); then
    fail lab/crd-accepts-valid "a valid Widget was refused: $(error_line "$out")"
  else
    pass lab/crd-accepts-valid
  fi

  rc=0; out=$(kubectl apply --server-side -n "$selfcheck_ns" -f - 2>&1 <<'YAML'
apiVersion: selfcheck.lab.lvs.test/v1
kind: Widget
metadata: {name: bad}
spec: {port: 80, mode: dr, targetPort: 8080}
YAML
) || rc=$?
  if ((rc == 0)); then
    fail lab/crd-cel-refuses "a Widget breaking the CEL rule was accepted"
  elif ! grep -qF 'targetPort may differ from port only with mode nat' <<<"$out"; then
    fail lab/crd-cel-refuses "refused with an unexpected message: $(error_line "$out")"
  else
    pass lab/crd-cel-refuses
  fi
  kubectl delete --wait=false -f "$crd"
}
