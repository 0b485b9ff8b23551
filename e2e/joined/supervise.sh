#!/usr/bin/env bash
# supervise.sh NAME DIR CMD [ARG...]: run CMD and start it again 2 s after it
# exits, as a Deployment's kubelet would (the operator exits when it loses its
# leader Lease, e.g. while the API server is away, and relies on a restart).
# Output is appended to DIR/NAME.log; the running child's pid is in
# DIR/NAME.child, the number of starts in DIR/NAME.starts. SIGTERM stops the
# child and the supervisor.
set -u
name=$1 dir=$2
shift 2
child=
stop=0
trap 'stop=1; [[ -n $child ]] && kill -TERM "$child" 2>/dev/null' TERM INT
starts=0
while ((stop == 0)); do
  starts=$((starts + 1))
  echo "=== start $starts at $(date -u +%FT%TZ)" >>"$dir/$name.log"
  "$@" >>"$dir/$name.log" 2>&1 </dev/null &
  child=$!
  echo "$child" >"$dir/$name.child"
  echo "$starts" >"$dir/$name.starts"
  rc=0
  wait "$child" || rc=$?
  # A trapped signal interrupts wait; wait again for the child's real exit.
  while kill -0 "$child" 2>/dev/null; do wait "$child" || rc=$?; done
  echo "=== exit status $rc at $(date -u +%FT%TZ)" >>"$dir/$name.log"
  ((stop == 0)) && sleep 2
done
