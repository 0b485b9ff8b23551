# Pinned cluster-lab versions (sourced by build-tools.sh and run-suite.sh). The
# Go modules in tools/*/go.mod must require the same versions; build-tools.sh
# refuses to build when they differ.
KUBE_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.19.5
# Prometheus for the joined lab's dashboard-queries scenario (a Go module
# version: v0.3xx.y is Prometheus 3.xx.y).
PROMETHEUS_VERSION=v0.316.0
