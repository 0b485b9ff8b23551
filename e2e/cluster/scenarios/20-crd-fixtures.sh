# Replays the CRD fixtures against the real API server: after crds/*.yaml are
# applied and Established, every crds/tests/valid/*.yaml must be accepted
# (server-side dry run) and every crds/tests/invalid/*.yaml must be refused with
# an error containing the substring on its first line, `# expect: <substring>`.
#   LVS_CRD_DIR           CRD manifests (default <repo>/crds)
#   LVS_CRD_FIXTURES_DIR  fixtures with valid/ and invalid/ (default $LVS_CRD_DIR/tests)

scenario crd-fixtures t_crd_fixtures
t_crd_fixtures() {
  local crd_dir=${LVS_CRD_DIR:-$LVS_REPO/crds}
  local fx=${LVS_CRD_FIXTURES_DIR:-$crd_dir/tests}
  local crds=("$crd_dir"/*.yaml) f out rc names=()
  if ((${#crds[@]} == 0)); then
    fail crd-fixtures/crds "no CRD manifests found at $crd_dir/*.yaml"
    return 0
  fi
  for f in "${crds[@]}"; do
    rc=0; out=$(kubectl apply --server-side -o name -f "$f" 2>&1) || rc=$?
    if ((rc != 0)); then
      fail crd-fixtures/crds "applying ${f#"$LVS_REPO"/}: $(error_line "$out")"
      return 0
    fi
    names+=($(grep '^customresourcedefinition' <<<"$out" || true))
  done
  if ((${#names[@]} == 0)); then
    fail crd-fixtures/crds "$crd_dir/*.yaml holds no CustomResourceDefinition"
    return 0
  fi
  if ! out=$(kubectl wait --for condition=Established --timeout 60s "${names[@]}" 2>&1); then
    fail crd-fixtures/crds "not Established within 60s: $(error_line "$out")"
    return 0
  fi
  pass crd-fixtures/crds-established

  local valid=("$fx"/valid/*.yaml) invalid=("$fx"/invalid/*.yaml)
  ((${#valid[@]})) || fail crd-fixtures/valid "no fixtures at $fx/valid/*.yaml"
  ((${#invalid[@]})) || fail crd-fixtures/invalid "no fixtures at $fx/invalid/*.yaml"

  for f in "${valid[@]}"; do
    ensure_namespaces "$f"
    rc=0; out=$(kubectl apply --server-side --dry-run=server -f "$f" 2>&1) || rc=$?
    if ((rc == 0)); then
      pass "crd-fixtures/valid/$(basename "$f")"
    else
      fail "crd-fixtures/valid/$(basename "$f")" "refused: $(error_line "$out")"
    fi
  done

  local header expect
  for f in "${invalid[@]}"; do
    local n
    n=crd-fixtures/invalid/$(basename "$f")
    header=$(head -n 1 "$f")
    if [[ ! $header =~ ^#[[:space:]]*expect:[[:space:]]*(.*[^[:space:]])[[:space:]]*$ ]]; then
      fail "$n" "first line is not '# expect: <substring>' (got '$header')"
      continue
    fi
    expect=${BASH_REMATCH[1]}
    ensure_namespaces "$f"
    rc=0; out=$(kubectl apply --server-side -f "$f" 2>&1) || rc=$?
    if ((rc == 0)); then
      fail "$n" "accepted, expected a refusal containing '$expect'"
      kubectl delete --ignore-not-found -f "$f" || true
    elif grep -qF -- "$expect" <<<"$out"; then
      pass "$n"
    else
      fail "$n" "refused, but without '$expect': $(error_line "$out")"
    fi
  done
}
