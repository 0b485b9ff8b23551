#!/usr/bin/env python3
"""Where the apply -> kernel time of the joined bench goes.

    latency_parts.py PER_CHANGE_LOG AGENT_LOG N M

PER_CHANGE_LOG is joinedbench latency's -log file (one line per change:
host_unix_ms = just before the PATCH, latency_ms = until the probe's report);
AGENT_LOG is the director agent's log during the changes (text format). The
changes are made one at a time, each after the previous one was seen, so the
i-th "changes from the API server" line and the i-th "sync done" line belong
to change i (checked: the counts must match).

The agent logs with the VM's clock, the changes are timed with the host's.
The offset between them is estimated as the smallest (seen on the host - sync
end in the VM) over all changes: the fastest report follows its sync by no
more than one probe poll and half a round trip. Queueing and the sync are
on the VM's clock alone and exact; the guest clock drifts under TCG during a
run, so the split between the first part (watch) and the last (seen) is
approximate, while their sum is exact.

Prints one line: metric=joined_latency_parts n=N m=M changes=K, then for each
part (watch: PATCH sent -> the agent has the change; queue: -> its sync
starts; sync; seen: sync end -> the probe's report on the host) its p50, p90
and p99 in ms.
"""
import datetime
import re
import sys


def stamp_ms(line):
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z", line)
    if not m:
        return None
    t = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
    return t.timestamp() * 1000.0


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(q * len(s) + 0.999999) - 1))]


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    per_change, agent_log, n, m = sys.argv[1:]
    changes = []
    for line in open(per_change):
        kv = dict(w.split("=", 1) for w in line.split() if "=" in w)
        changes.append((float(kv["host_unix_ms"]), float(kv["latency_ms"])))
    events, syncs = [], []
    for line in open(agent_log):
        t = stamp_ms(line)
        if t is None:
            continue
        if "changes from the API server" in line:
            events.append(t)
        elif "sync done" in line and "full=false" in line:
            e = re.search(r"elapsed_ms=(\d+)", line)
            syncs.append((t, float(e.group(1)) if e else 0.0))
    if not changes or len(events) != len(changes) or len(syncs) != len(changes):
        sys.exit(f"latency_parts: {len(changes)} changes, {len(events)} change batches and "
                 f"{len(syncs)} incremental syncs in the agent log; they must pair one to one")
    offset = min(t0 + lat - s_end for (t0, lat), (s_end, _) in zip(changes, syncs))
    parts = {"watch": [], "queue": [], "sync": [], "seen": []}
    for (t0, lat), ev, (s_end, el) in zip(changes, events, syncs):
        ev_h, end_h = ev + offset, s_end + offset
        parts["watch"].append(ev_h - t0)
        parts["queue"].append(end_h - el - ev_h)
        parts["sync"].append(el)
        parts["seen"].append(t0 + lat - end_h)
    words = [f"metric=joined_latency_parts contender=agent n={n} m={m} changes={len(changes)}"]
    for name, vals in parts.items():
        for q in (50, 90, 99):
            words.append(f"{name}_p{q}_ms={pct(vals, q / 100):.1f}")
    print(" ".join(words))


if __name__ == "__main__":
    main()
