# Helpers for scenarios/*.sh (sourced by run-suite.sh; `pass NAME` and
# `fail NAME WHY` report results, everything else a scenario prints is logged).

# first_line TEXT -> the first non-empty line, for one-line failure reasons.
first_line() { grep -m1 -v '^[[:space:]]*$' <<<"$1" || true; }

# error_line TEXT -> the first line that looks like an error, else the first line.
error_line() { grep -m1 -iE 'error|forbidden|denied|invalid' <<<"$1" || first_line "$1"; }

# retry SECONDS CMD... -> run CMD until it succeeds or SECONDS elapse.
retry() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}

# jwt_claims TOKEN -> the decoded JSON payload of a JWT.
jwt_claims() {
  local p
  p=$(cut -d. -f2 <<<"$1" | tr '_-' '/+')
  while (($(printf %s "$p" | wc -c) % 4)); do p+="="; done
  base64 -d <<<"$p"
}

# ensure_namespaces FILE -> create every namespace FILE's objects name in metadata.
ensure_namespaces() {
  local ns
  for ns in $(sed -nE 's/^  namespace:[[:space:]]*"?([a-z0-9-]+)"?[[:space:]]*$/\1/p' "$1" | sort -u); do
    kubectl get namespace "$ns" >/dev/null 2>&1 || kubectl create namespace "$ns"
  done
}
