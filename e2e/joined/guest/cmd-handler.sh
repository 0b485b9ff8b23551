#!/bin/sh
# Command channel handler: busybox `nc -ll -e` runs one per TCP connection from
# the host (qemu hostfwd), with the socket as stdin and stdout.
#
# Request:  "NODE STDIN_BYTES BASE64(SCRIPT)\n" then STDIN_BYTES bytes of stdin.
#           NODE is a node namespace (client, router, dir1, ..., rs5) or "root".
# Response: "@@RC STATUS STDOUT_BYTES STDERR_BYTES\n", then stdout, then stderr.
#
# SCRIPT runs in a fresh busybox sh inside NODE's network namespace (nsenter
# --net; /sys still shows the root namespace) with the lab's guest helpers
# loaded (lib.sh, topology.sh, checks.sh). Its output is collected in files
# and sent when it ends, so a background process it starts must redirect its
# own output.
exec 3<&0 4>&1 </dev/null >/dev/null 2>/dev/null
IFS=' ' read -r node inlen b64 <&3 || exit 0
d="$(mktemp -d /tmp/cmd.XXXXXX)" || exit 0
printf '%s' "$b64" | base64 -d >"$d/cmd"
case "$inlen" in ''|*[!0-9]*) inlen=0 ;; esac
if [ "$inlen" -gt 0 ]; then head -c "$inlen" <&3 >"$d/in"; else : >"$d/in"; fi
case "$node" in
    root)
        sh /lab/joined/run-cmd.sh "$d/cmd" <"$d/in" >"$d/out" 2>"$d/err" 3<&- 4>&-
        rc=$? ;;
    *[!a-z0-9-]*|'')
        echo "command channel: bad node name '$node'" >"$d/err"; : >"$d/out"; rc=127 ;;
    *)
        if [ -e "/run/netns/$node" ]; then
            nsenter --net="/run/netns/$node" sh /lab/joined/run-cmd.sh "$d/cmd" \
                <"$d/in" >"$d/out" 2>"$d/err" 3<&- 4>&-
            rc=$?
        else
            echo "command channel: no node '$node' (nodes: root $(ls /run/netns | tr '\n' ' '))" >"$d/err"
            : >"$d/out"; rc=127
        fi ;;
esac
printf '@@RC %s %s %s\n' "$rc" "$(wc -c <"$d/out")" "$(wc -c <"$d/err")" >&4
cat "$d/out" "$d/err" >&4
rm -rf "$d"
