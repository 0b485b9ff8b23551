#!/usr/bin/env bash
# Builds the cluster-lab binaries (etcd, kube-apiserver, kube-controller-manager,
# kubectl, helm; prometheus only when named) from the
# Go module proxy, each from its own module under e2e/cluster/tools/<name>/.
# Binaries land in ${LVS_CACHE:-<repo>/.cache}/cluster-lab/bin/. A binary is
# rebuilt only when its stamp (version, go.mod/go.sum hash, ldflags) changed.
#
# Usage: build-tools.sh [TOOL...]   (default: all tools but prometheus, which
#        only the joined lab's dashboard-queries scenario needs)
# Safe to run concurrently: each tool is built under its own lock.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${LVS_CACHE:-$repo/.cache}
bindir=$cache/cluster-lab/bin
logdir=$cache/cluster-lab/build-logs
go=${GO:-/usr/local/go/bin/go}
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false

# shellcheck source=versions.sh
source "$here/versions.sh"

die() { echo "build-tools.sh: $*" >&2; exit 1; }

[[ -x $go ]] || die "Go toolchain not found at $go (set GO=...)"
mkdir -p "$bindir" "$logdir"

# module_version DIR MODULE -> the version DIR/go.mod requires for MODULE
module_version() {
  (cd "$1" && "$go" list -mod=readonly -m -f '{{.Version}}' "$2")
}

kube_ldflags() {
  local minor
  minor=$(cut -d. -f2 <<<"$KUBE_VERSION")
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ld+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  printf '%s' "$ld"
}

helm_ldflags() {
  local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
  # Same as helm's Makefile: default capabilities follow the client-go minor.
  local cg
  cg=$(module_version "$here/tools/helm" k8s.io/client-go)
  local minor
  minor=$(cut -d. -f2 <<<"$cg")
  for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ld+=" -X $p.k8sVersionMajor=1 -X $p.k8sVersionMinor=$minor"
  done
  printf '%s' "$ld"
}

# build NAME MODDIR PACKAGE MODULE VERSION LDFLAGS [TAGS]: one tool, under a
# lock per tool, so that a second build-tools.sh (make test starts one in the
# background, e2e/lib/prebuild.sh) waits for it and then finds it built.
build() {
  (
    flock 9
    build_locked "$@"
  ) 9>"$bindir/.$1.lock"
}

build_locked() {
  local name=$1 moddir=$2 pkg=$3 module=$4 want=$5 ldflags=$6 tags=${7:-}
  local have
  have=$(module_version "$moddir" "$module") || die "$name: cannot read $module version from $moddir/go.mod"
  [[ $have == "$want" ]] || die "$name: $moddir/go.mod pins $module $have, build-tools.sh expects $want"
  local sum
  sum=$(cat "$moddir/go.mod" "$moddir/go.sum" | sha256sum | cut -c1-16)
  local stamp="$name $want gomod=$sum go=$("$go" env GOVERSION) ldflags=$(sha256sum <<<"$ldflags" | cut -c1-16)${tags:+ tags=$tags}"
  local out=$bindir/$name
  if [[ -x $out && -f $out.version && $(cat "$out.version") == "$stamp" ]]; then
    echo "build-tools.sh: $name $want up to date ($out)"
    return 0
  fi
  echo "build-tools.sh: building $name $want (log: $logdir/$name.log)"
  local start end rc=0
  start=$(date +%s)
  (cd "$moddir" && "$go" build -mod=readonly -trimpath -tags="$tags" -ldflags="$ldflags" -o "$out.tmp" "$pkg") \
    >"$logdir/$name.log" 2>&1 || rc=$?
  end=$(date +%s)
  if ((rc != 0)); then
    tail -n 30 "$logdir/$name.log" >&2
    die "$name: go build failed (exit $rc), see $logdir/$name.log"
  fi
  mv -f "$out.tmp" "$out"
  printf '%s\n' "$stamp" >"$out.version"
  printf '%s %s %ss %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$((end - start))" "$want" >>"$cache/cluster-lab/build-times.txt"
  echo "build-tools.sh: built $name $want in $((end - start))s"
}

want_tool() {
  local t
  for t in "${selected[@]}"; do [[ $t == "$1" ]] && return 0; done
  return 1
}

selected=("$@")
for t in "${selected[@]}"; do
  case $t in kube-apiserver | kube-controller-manager | kubectl | etcd | helm | prometheus) ;; *) die "unknown tool '$t' (expected kube-apiserver, kube-controller-manager, kubectl, etcd, helm, prometheus)" ;; esac
done
pick() { ((${#selected[@]} == 0)) || want_tool "$1"; }

# kube-apiserver first: it is the slowest, and kubectl reuses most of its cache.
if pick kube-apiserver; then
  build kube-apiserver "$here/tools/kube" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes "$KUBE_VERSION" "$(kube_ldflags)"
fi
# The endpointslice and garbage collector controllers: same k8s.io/kubernetes,
# its own module (tools/kcm) so that tools/kube keeps its go.sum.
if pick kube-controller-manager; then
  build kube-controller-manager "$here/tools/kcm" k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes "$KUBE_VERSION" "$(kube_ldflags)"
fi
if pick kubectl; then
  build kubectl "$here/tools/kube" k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes "$KUBE_VERSION" "$(kube_ldflags)"
fi
if pick etcd; then
  build etcd "$here/tools/etcd" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "-s -w"
fi
if pick helm; then
  build helm "$here/tools/helm" helm.sh/helm/v3/cmd/helm helm.sh/helm/v3 "$HELM_VERSION" "$(helm_ldflags)"
fi
# Prometheus (joined lab, dashboard-queries): only when named. Scrapes static
# targets only, so every service discovery plugin is left out
# (remove_all_sd), and without the builtinassets tag no web UI is embedded:
# the scenario uses the HTTP API alone.
if want_tool prometheus; then
  build prometheus "$here/tools/prometheus" github.com/prometheus/prometheus/cmd/prometheus \
    github.com/prometheus/prometheus "$PROMETHEUS_VERSION" \
    "-s -w -X github.com/prometheus/common/version.Version=$PROMETHEUS_VERSION" remove_all_sd
fi
