# The labs' container image: podman with the settings that work on the lab
# machines, and where the image lives. Source it from bash after common.sh:
#   . "$LVS_REPO/e2e/lib/image.sh"
# e2e/image/build.sh builds the image; the image-* scenarios run it.
# shellcheck shell=bash

# Podman's storage, run and temporary directories, all under the lab cache, so
# the labs leave no images or containers in the machine's own podman storage.
LVS_IMAGE_HOME="$LVS_CACHE/image"
# The image built from the Dockerfile's `lab` stage; build.sh also tags it
# lab-<hash of the binaries and the Dockerfile>.
LVS_IMAGE_REPO=localhost/lvs-operator
LVS_IMAGE="$LVS_IMAGE_REPO:lab"
# Where the binaries sit in the image (the shipped stage's layout).
LVS_IMAGE_OPERATOR=/usr/local/bin/lvs-operator
LVS_IMAGE_AGENT=/usr/local/bin/node-agent

# lvs_podman ARG...: podman on the lab storage. The vfs driver needs no
# overlay mounts; crun (podman's default runtime) fails here on setrlimit and
# on the hybrid cgroup layout, runc with cgroupfs works; no journald for events.
# Containers also need explicit --ulimit nofile/nproc (lvs_podman_ulimits).
lvs_podman() {
    mkdir -p "$LVS_IMAGE_HOME/storage" "$LVS_IMAGE_HOME/run" "$LVS_IMAGE_HOME/tmp"
    podman --root "$LVS_IMAGE_HOME/storage" --runroot "$LVS_IMAGE_HOME/run" \
        --tmpdir "$LVS_IMAGE_HOME/tmp" --storage-driver vfs \
        --runtime runc --cgroup-manager cgroupfs --events-backend none "$@"
}
# The rlimits a container is started with (podman's default copies the
# caller's, which runc may not set here).
lvs_podman_ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=1024:1024)

# lvs_image_check: fail (status 1, reason on stderr) unless podman is installed
# and the lab image exists. The image scenarios call this first: a missing
# image is a failure, never a skip.
lvs_image_check() {
    if ! command -v podman >/dev/null 2>&1; then
        echo "podman is not installed (e2e/image/build.sh installs it and builds the image)" >&2
        return 1
    fi
    if ! lvs_podman image exists "$LVS_IMAGE"; then
        echo "image $LVS_IMAGE is not in $LVS_IMAGE_HOME/storage (build it: e2e/image/build.sh)" >&2
        return 1
    fi
}

# lvs_image_extract PATH-IN-IMAGE DEST: copy one file out of the lab image,
# byte for byte (a created, never started container; removed afterwards).
lvs_image_extract() {
    local cid rc=0
    cid="$(lvs_podman create --pull never "$LVS_IMAGE")" || return 1
    lvs_podman cp "$cid:$1" "$2" || rc=$?
    lvs_podman rm -f "$cid" >/dev/null || true
    return "$rc"
}
