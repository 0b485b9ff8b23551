# Host-side helpers of the joined lab (bash). Sourced by lab.sh, in-node.sh,
# run-suite.sh and demo.sh.
# shellcheck shell=bash disable=SC2034

JL_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../lib/common.sh
. "$JL_HERE/../lib/common.sh"

# The joined lab's addressing: the kernel lab's topology with the networks the
# examples use (examples/nat.yaml: realservers 10.10.0.11-13; VIPs 192.0.2.x).
# 10.0.2.0/24 belongs to qemu user networking (the host is 10.0.2.2 there).
JL_LAN4=10.10.0
JL_REM4=10.10.1
JL_VIP4=192.0.2
# Nodes with an agent (and a NIC to the host), in NIC order.
JL_AGENT_NODES=(dir1 dir2 rs1 rs2 rs3 rs4 rs5)


# jl_ha_args NODE: the agent flags of director NODE with director HA on:
# LVS_JOINED_HA_ARGS_<NODE>, else LVS_JOINED_HA_ARGS, else the Lease election.
# The agents listen on 0.0.0.0:9477 in their node, so the standby's probe of
# the active (GET /ha on its InternalIP) reaches it over the lan.
jl_ha_args() {
  local v="LVS_JOINED_HA_ARGS_$1"
  echo "${!v:-${LVS_JOINED_HA_ARGS:---ha --ha-namespace lvs-system}}"
}

# jl_node_ip NODE: the node's InternalIP in the joined topology.
jl_node_ip() {
  case $1 in
    client) echo 198.51.100.10 ;;
    router) echo "$JL_LAN4.1" ;;
    dir1) echo "$JL_LAN4.2" ;;
    dir2) echo "$JL_LAN4.3" ;;
    rs1 | rs2 | rs3) echo "$JL_LAN4.1${1#rs}" ;;
    rs4 | rs5) echo "$JL_REM4.1${1#rs}" ;;
    *) return 1 ;;
  esac
}

# The lab directory: LVS_JOINED_DIR, default $LVS_CACHE/joined-lab/lab.
jl_dir() { echo "${LVS_JOINED_DIR:-$LVS_CACHE/joined-lab/lab}"; }

# jl_load_env: export the running lab's environment (KUBECONFIG, PATH with the
# lab's kubectl and helm, the command-channel port).
jl_load_env() {
  local env
  env="$(jl_dir)/joined.env"
  [[ -f $env ]] || lvs_die "no joined lab running in $(jl_dir) (start it: e2e/joined/lab.sh up)"
  # shellcheck disable=SC1090
  . "$env"
}

# jl_exec NODE SCRIPT [STDIN-FILE]: run the sh SCRIPT in NODE ("root" for the
# VM itself) over the command channel; its stdout and stderr come back on ours,
# and its exit status is ours (255: no answer from the VM, 127: no such node).
# LVS_JOINED_CMD_TIMEOUT (default 300 s) bounds the whole call.
jl_exec() {
  local node=$1 script=$2 in=${3:-/dev/null}
  local port=${LVS_JOINED_CMD_PORT:?LVS_JOINED_CMD_PORT unset: no joined lab environment loaded}
  local resp inlen rc hdr olen elen
  resp=$(mktemp "${TMPDIR:-/tmp}/jl-resp.XXXXXX")
  inlen=$(stat -L -c %s "$in" 2>/dev/null || echo 0)
  [[ $in == /dev/null ]] && inlen=0
  timeout -k 2 "${LVS_JOINED_CMD_TIMEOUT:-300}" bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 255
    printf "%s %s %s\n" "$2" "$3" "$4" >&3
    [ "$3" -gt 0 ] && cat "$5" >&3
    cat <&3' _ "$port" "$node" "$inlen" "$(printf '%s' "$script" | base64 -w0)" "$in" >"$resp" 2>/dev/null
  hdr=$(head -n 1 "$resp")
  if [[ ! $hdr =~ ^@@RC\ ([0-9]+)\ ([0-9]+)\ ([0-9]+)$ ]]; then
    rm -f "$resp"
    echo "in_node $node: no answer from the lab VM's command channel (127.0.0.1:$port)" >&2
    return 255
  fi
  rc=${BASH_REMATCH[1]} olen=${BASH_REMATCH[2]} elen=${BASH_REMATCH[3]}
  tail -c +$((${#hdr} + 2)) "$resp" | head -c "$olen"
  ((elen == 0)) || tail -c +$((${#hdr} + 2 + olen)) "$resp" >&2
  rm -f "$resp"
  return "$rc"
}

# jl_quote ARG...: the arguments as one sh command line (single-quoted).
jl_quote() {
  local a out=""
  for a in "$@"; do
    out+=" '${a//\'/\'\\\'\'}'"
  done
  printf '%s' "${out# }"
}

# jl_in_node NODE CMD [ARG...]: run CMD with its arguments in NODE.
# jl_in_node -i NODE CMD...: the same, forwarding our stdin.
jl_in_node() {
  local in=/dev/null tmp="" rc=0
  if [[ ${1:-} == -i ]]; then
    shift
    tmp=$(mktemp "${TMPDIR:-/tmp}/jl-in.XXXXXX")
    cat >"$tmp"
    in=$tmp
  fi
  local node=$1
  shift
  jl_exec "$node" "$(jl_quote "$@")" "$in" || rc=$?
  [[ -z $tmp ]] || rm -f "$tmp"
  return "$rc"
}
