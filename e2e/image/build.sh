#!/usr/bin/env bash
# Build the labs' container image without pulling anything: the Dockerfile's
# `lab` stage (`FROM scratch` with the shipped stage's layout) around static
# binaries that cargo builds on this machine.
#
#   e2e/image/build.sh        prints the image reference on stdout
#
# Steps:
#   1. apt-get install podman and runc when missing.
#   2. Static release binaries of lvs-operator and node-agent:
#        RUSTFLAGS='-C target-feature=+crt-static' cargo build --release \
#            --target x86_64-unknown-linux-gnu -p lvs-operator -p lvs-node-agent
#      The shipped builder stage links against musl instead; this machine's
#      toolchain has no musl target and cannot download one, so the lab image
#      carries static glibc binaries (same code, same profile, other libc).
#      The explicit --target keeps build scripts and proc-macros dynamic.
#      LVS_IMAGE_BIN_DIR=DIR skips cargo and takes DIR/lvs-operator and
#      DIR/node-agent (e.g. musl binaries built elsewhere); they must be static.
#   3. Checks that the lab stage has the shipped stage's COPY destination, USER
#      and ENTRYPOINT, so the lab image has the shape that ships.
#   4. podman build --target lab --pull=never with the two binaries as the whole
#      build context, tagged localhost/lvs-operator:lab and :lab-<hash>, where
#      the hash covers both binaries and the Dockerfile. An image with that
#      hash is reused, so an unchanged build costs a cargo no-op.
#
# Podman's storage lives under $LVS_CACHE/image (see e2e/lib/image.sh). Runs as
# root; safe to run concurrently (flock). Log lines go to stderr.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../lib/common.sh
. "$HERE/../lib/common.sh"
# shellcheck source=../lib/image.sh
. "$HERE/../lib/image.sh"

TARGET=x86_64-unknown-linux-gnu
DOCKERFILE="$LVS_REPO/Dockerfile"

lvs_need_root
lvs_apt_ensure podman runc binutils jq
mkdir -p "$LVS_IMAGE_HOME"

# --- 2. the binaries ----------------------------------------------------------
if [ -n "${LVS_IMAGE_BIN_DIR:-}" ]; then
    BIN_DIR="$LVS_IMAGE_BIN_DIR"
else
    command -v cargo >/dev/null 2>&1 || lvs_die "no cargo to build the image's binaries (or set LVS_IMAGE_BIN_DIR)"
    target_dir="$(cd "$LVS_REPO" && cargo metadata --format-version 1 --no-deps | jq -r .target_directory)" \
        || lvs_die "cargo metadata failed: cannot tell where cargo puts the binaries"
    BIN_DIR="$target_dir/$TARGET/release"
    log="$LVS_IMAGE_HOME/cargo-build.log"
    lvs_log "static release build (RUSTFLAGS=-C target-feature=+crt-static, --target $TARGET), log $log"
    if ! (cd "$LVS_REPO" && RUSTFLAGS='-C target-feature=+crt-static' \
        cargo build --locked --release --target "$TARGET" -p lvs-operator -p lvs-node-agent) >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        lvs_die "static release build failed: $(grep -m1 '^error' "$log" || tail -n1 "$log")"
    fi
    # glibc warns when a static binary links getaddrinfo or getpwnam: they need
    # the shared NSS modules at run time, which scratch does not have.
    # Numeric addresses (the lab's 127.0.0.1, a Pod's KUBERNETES_SERVICE_HOST)
    # never reach NSS.
    { grep -h 'statically linked applications requires at runtime' "$log" || true; } | sort -u | while read -r w; do
        lvs_log "linker: $w"
    done
fi
for b in lvs-operator node-agent; do
    [ -x "$BIN_DIR/$b" ] || lvs_die "$BIN_DIR/$b is missing or not executable"
    # A dynamic executable names an ELF interpreter; a static one does not, and
    # nothing in a scratch image could load one.
    if LC_ALL=C readelf -lW "$BIN_DIR/$b" 2>/dev/null | grep -q 'program interpreter'; then
        lvs_die "$BIN_DIR/$b is dynamically linked ($(LC_ALL=C readelf -lW "$BIN_DIR/$b" | grep -o 'interpreter: [^]]*')); the image needs static binaries"
    fi
done

# --- 3. the lab stage has the shipped shape ----------------------------------------
# stage_lines NAME|last: the COPY destination, USER and ENTRYPOINT of a stage.
stage_lines() {
    awk -v want="$1" '
        /^FROM / { n++; name = ($NF != $2 && toupper($(NF-1)) == "AS") ? $NF : ""; cur = n; next }
        { lines[cur] = lines[cur] $0 "\n"; if (name == want) sel = cur }
        END { if (want == "last") sel = n; printf "%s", lines[sel] }
    ' "$DOCKERFILE" | awk '/^COPY / { print "COPY -> " $NF } /^(USER|ENTRYPOINT) / { print }'
}
lab_shape="$(stage_lines lab)"
shipped_shape="$(stage_lines last)"
[ -n "$lab_shape" ] || lvs_die "$DOCKERFILE has no stage named lab"
if [ "$lab_shape" != "$shipped_shape" ]; then
    lvs_die "the Dockerfile's lab stage differs from the shipped (last) stage: lab has [$(echo "$lab_shape" | paste -sd';')], shipped has [$(echo "$shipped_shape" | paste -sd';')]"
fi

# --- 4. the image ----------------------------------------------------------------
hash="$(cat "$BIN_DIR/lvs-operator" "$BIN_DIR/node-agent" "$DOCKERFILE" | sha256sum | cut -c1-16)"
TAG="$LVS_IMAGE_REPO:lab-$hash"
exec 9>"$LVS_IMAGE_HOME/.build.lock"
flock 9
if lvs_podman image exists "$TAG"; then
    lvs_podman tag "$TAG" "$LVS_IMAGE"
    lvs_log "image $TAG is up to date"
else
    CTX="$(mktemp -d "${TMPDIR:-/tmp}/lvs-image-ctx.XXXXXX")"
    trap 'rm -rf "$CTX"' EXIT
    cp "$BIN_DIR/lvs-operator" "$BIN_DIR/node-agent" "$CTX/"
    t0="$(lvs_now_ms)"
    lvs_podman build --pull=never --target lab -f "$DOCKERFILE" -t "$TAG" -t "$LVS_IMAGE" "$CTX" >"$LVS_IMAGE_HOME/podman-build.log" 2>&1 \
        || { cat "$LVS_IMAGE_HOME/podman-build.log" >&2; lvs_die "podman build --target lab failed: $(tail -n1 "$LVS_IMAGE_HOME/podman-build.log")"; }
    lvs_log "built $TAG in $(( ($(lvs_now_ms) - t0) / 1000 ))s"
    # Keep only the current lab image: older lab-* tags go, then their layers.
    for old in $(lvs_podman images --format '{{.Repository}}:{{.Tag}}' | grep "^$LVS_IMAGE_REPO:lab-" || true); do
        [ "$old" = "$TAG" ] || lvs_podman rmi "$old" >/dev/null 2>&1 || true
    done
    lvs_podman image prune -f >/dev/null 2>&1 || true
fi
echo "$TAG"
