# One image with both binaries: lvs-operator (Deployment) and node-agent (DaemonSet).
#   docker build -t lvs-operator:dev .
#   docker build --build-arg PROFILE=release -t lvs-operator:dev .
# The build stage compiles a static musl binary so the final stage needs no libc.

FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends musl-tools && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ENV CC_x86_64_unknown_linux_musl=musl-gcc
RUN cargo build --locked --release --target x86_64-unknown-linux-musl -p lvs-operator -p lvs-node-agent \
 && mkdir -p /out \
 && cp target/x86_64-unknown-linux-musl/release/lvs-operator target/x86_64-unknown-linux-musl/release/node-agent /out/

# The labs' image (e2e/image/build.sh, `--target lab`): the shipped layout below
# (same paths, user, entrypoint) on `scratch`, from static binaries cargo built
# on the host and handed in as the build context, so nothing is pulled. It
# comes before the shipped stage so that a build without --target still ends
# with the shipped one. BuildKit (docker's default builder) and buildah build
# only the stages the target needs: this one alone for --target lab, never this
# one otherwise (docker's legacy builder, DOCKER_BUILDKIT=0, would build it and
# fail for want of the binaries in the context). scratch has less than
# distroless/static (no /etc/passwd, no CA bundle, no /tmp), so whatever runs
# here also finds what it needs there.
FROM scratch AS lab
COPY lvs-operator node-agent /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/lvs-operator"]

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/lvs-operator /out/node-agent /usr/local/bin/
# The operator runs as the image's non-root user; the agent's pod spec runs it
# as uid 0 with only NET_ADMIN (see charts/lvs-operator).
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/lvs-operator"]
