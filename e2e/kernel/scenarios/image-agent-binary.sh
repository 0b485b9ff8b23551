# The node agent taken out of the lab image (e2e/image/build.sh; the bytes that
# ship, copied out with `podman cp` and packed unchanged by run-suite.sh) runs
# the agent-nat scenario: it programs an IPVS NAT service on dir1, holds the
# VIP, and traffic flows through it both ways.
. /lab/scenario.sh
LAB_AGENT_BIN=/image/usr/local/bin/node-agent
[ -f "$LAB_AGENT_BIN" ] || fail "no node-agent from the image at $LAB_AGENT_BIN (run-suite.sh packs it; is the image built?)"
[ -n "${LAB_IMAGE_AGENT_SHA256:-}" ] || fail "LAB_IMAGE_AGENT_SHA256 is unset: run-suite.sh passes the image binary's checksum"
got="$(sha256sum "$LAB_AGENT_BIN" | cut -d' ' -f1)"
[ "$got" = "$LAB_IMAGE_AGENT_SHA256" ] \
    || fail "$LAB_AGENT_BIN has sha256 $got, but the binary copied out of the image has $LAB_IMAGE_AGENT_SHA256: not the image's bytes"
echo "ok: $LAB_AGENT_BIN is the image's binary (sha256 $got)"
export LAB_AGENT_BIN

. /lab/scenarios/agent-nat.sh

exe="$(readlink "/proc/$(cat "$LAB_AGENT_RUN/dir1.pid")/exe")"
[ "$exe" = "$LAB_AGENT_BIN" ] || fail "the agent on dir1 runs $exe, expected $LAB_AGENT_BIN"
echo "ok: the agent on dir1 runs $exe"
