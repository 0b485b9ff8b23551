# lvs-operator front door. Each target is a thin call into the project's tools.
SHELL := /bin/bash
CARGO ?= cargo
export LVS_CACHE ?= $(CURDIR)/.cache
KEEP ?= 0

.PHONY: all test prebuild unit lint fmt crds check-generated e2e-kernel e2e-cluster e2e demo bench deps build image fuzz

all: test

## test: everything that proves the project (lint, generated files, unit tests, every lab suite)
test: prebuild lint check-generated unit e2e-kernel e2e-cluster e2e

## prebuild: start the labs' slow builds (image, cluster tools, Prometheus) in
## the background at nice 19, so they fill the CPU the steps after it leave idle
prebuild:
	@bash e2e/lib/prebuild.sh

## unit: the cargo tests that need no lab
unit:
	$(CARGO) test --workspace --all-targets --locked

## lint: rustfmt check and clippy with warnings as errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt --all

## crds: regenerate the CRD YAML in crds/ and the chart
crds:
	$(CARGO) run -q -p xtask --locked -- crds

## check-generated: fail when generated files differ from what is committed
check-generated: crds
	@git diff --exit-code -- crds charts/lvs-operator/crds || { echo "FAIL check-generated: generated files are stale; run 'make crds' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- crds charts/lvs-operator/crds)" || { echo "FAIL check-generated: untracked generated files"; git status --porcelain -- crds charts/lvs-operator/crds; exit 1; }

## build: the binaries the labs run
build:
	$(CARGO) build --locked -p lvs-node-agent -p lvs-operator -p lvs-kubectl

## image: the labs' container image (Dockerfile stage `lab`, static binaries built
## here, podman storage under $(LVS_CACHE)/image); the image-* scenarios of both
## lab suites build it themselves, cached by the binaries' hash
image:
	bash e2e/image/build.sh

## e2e-kernel: the kernel lab (qemu TCG VM, network namespaces as nodes, real IPVS traffic)
e2e-kernel: build
	bash e2e/kernel/run-suite.sh

## e2e-cluster: the cluster lab (etcd + kube-apiserver + helm from Go modules, RBAC on)
e2e-cluster: build
	bash e2e/cluster/run-suite.sh

## e2e: the joined lab (kubectl apply -> agents in the VM -> traffic)
e2e: build
	LVS_JOINED_NO_BUILD=1 bash e2e/joined/run-suite.sh

## demo: build and start the labs, apply the examples, print a report
## (KEEP=1 leaves the lab running; stop it with e2e/joined/lab.sh down)
demo:
	@KEEP=$(KEEP) bash e2e/joined/demo.sh

## fuzz: every fuzz target (netlink codec, importers) for FUZZ_SECONDS each
## (default 60) on nightly with cargo-fuzz; not part of `make test`
FUZZ_SECONDS ?= 60
fuzz:
	bash fuzz/run.sh $(FUZZ_SECONDS)

## bench: benchmarks in the kernel lab
bench:
	@if [ -x e2e/bench/run.sh ]; then bash e2e/bench/run.sh; else echo "make bench: not yet"; exit 1; fi
