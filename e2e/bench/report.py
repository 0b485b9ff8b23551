#!/usr/bin/env python3
"""Turn the guest's raw measurements into results.csv, report.md and a plot.

    report.py RAW OUTDIR [--extra FILE]... [--wall-s SECONDS] [--no-plot]

RAW is /out/raw.txt of one VM run (lines of key=value words, see guest.sh).
--extra adds lines in the same format from elsewhere; that is the hook for the
apply->kernel latency, which needs the joined (Kubernetes) lab:

    metric=apply_latency contender=agent n=N m=M p50_ms=X p99_ms=Y

Without such lines the apply_latency rows say "not measured". The failover
part (failover.sh) adds failover_sample, vips_spread and failover_wall lines;
the failover_s rows are their median and max. The control-plane part (cp.sh)
adds operator_status_catchup, cp_converge, agent_api_rps_idle, apiserver_write_floor
and cp_wall.
Prints the summary table on stdout. Exit status 1 when RAW holds problems
(a failed step, a table that differs from the rules), 0 otherwise; targets
that are missed are reported, not failed: timings under TCG are no test.
"""
import csv
import os
import shlex
import statistics
import sys
from collections import defaultdict

CONTENDERS = ["ipvsadm", "go-ipvs", "lib-batch1", "lib-batch16", "lib-batch64",
              "lib-batch256", "agent"]
OPS = ["add_dest", "set_weight", "del_dest", "add_svc"]
HOLDER = "lib-batch64"  # the library at its default batch size


def parse(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("metric="):
                continue
            d = {}
            for word in shlex.split(line):
                if "=" in word:
                    k, v = word.split("=", 1)
                    d[k] = v
            rows.append(d)
    return rows


def num(d, k):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=3):
    if x is None:
        return "n/a"
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}g}"


def sz(n):
    """1000 -> 1k, 20000 -> 20k, 500 -> 500."""
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)


def ratio(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def main(argv):
    args = argv[1:]
    extra, wall_s, plot = [], None, True
    pos = []
    while args:
        a = args.pop(0)
        if a == "--extra":
            extra.append(args.pop(0))
        elif a == "--wall-s":
            wall_s = float(args.pop(0))
        elif a == "--no-plot":
            plot = False
        else:
            pos.append(a)
    if len(pos) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    raw, outdir = pos
    rows = parse(raw)
    for e in extra:
        if os.path.exists(e):
            rows += parse(e)
    os.makedirs(outdir, exist_ok=True)

    by = defaultdict(list)
    for r in rows:
        by[r["metric"]].append(r)
    problems = [r.get("what", "?") for r in by["problem"]]
    checks = by["check"]
    bad_checks = [c for c in checks if c.get("ok") != "1"]
    env = by["env"][0] if by["env"] else {}
    host = by["host"][0] if by["host"] else {}
    done = by["done"][0] if by["done"] else None
    if done is None:
        problems.append("the guest did not finish (no 'done' line): the run was cut short")

    out = []  # (metric, contender, n, m, value, unit)

    # --- converge ------------------------------------------------------------------
    conv = {}  # (contender, n, m) -> dict
    for r in by["converge"]:
        key = (r["contender"], int(r["n"]), int(r["m"]))
        wall = num(r, "wall_ms")
        cpu = num(r, "cpu_ms")
        ops = num(r, "ops")
        ok = r.get("rc") == "0"
        conv[key] = {"wall": wall / 1e3 if wall is not None and ok else None,
                     "cpu": cpu / 1e3 if cpu is not None and ok else None,
                     "ops": ops, "inner": r}
    for (c, n, m), v in sorted(conv.items(), key=lambda kv: (kv[0][1], kv[0][2], CONTENDERS.index(kv[0][0]))):
        out.append(("converge", c, n, m, v["wall"], "s_wall"))
        out.append(("converge", c, n, m, v["cpu"], "s_cpu"))
        out.append(("converge", c, n, m,
                    v["ops"] / v["wall"] if v["wall"] else None, "ops_per_s"))

    # --- one change --------------------------------------------------------------------
    change = defaultdict(dict)  # (contender, n) -> {op: (p50_ms, requests, dumps)}
    # The agent's rounds: the median latency per operation, the most
    # requests any round sent.
    agent_rounds = defaultdict(lambda: defaultdict(list))
    for r in by["one_change"]:
        c, n = r["contender"], int(r["n"])
        if c == "agent":
            for k in ("elapsed_ms", "ipvs_requests", "ipvs_dumps", "other_requests", "ctrl_requests"):
                v = num(r, k)
                if v is not None:
                    agent_rounds[(n, r["op"])][k].append(v)
        else:
            for op in OPS:
                e = change[(c, n)].setdefault(op, {})
                v = num(r, f"{op}_p50_ms")
                if v is not None:
                    e.setdefault("p50s", []).append(v)
                e["p50"] = med(e.get("p50s", []))
                if c.startswith("lib-"):
                    req = num(r, f"{op}_requests")
                    e["req"] = req if e.get("req") is None or req is None else max(e["req"], req)
                    e["dumps"] = 0.0
    for (n, op), vals in agent_rounds.items():
        worst = lambda k: max(vals[k]) if vals[k] else None
        change[("agent", n)][op] = {"p50": med(vals["elapsed_ms"]), "rounds": len(vals["elapsed_ms"]),
                                    "req": worst("ipvs_requests"), "dumps": worst("ipvs_dumps"),
                                    "other": worst("other_requests"), "ctrl": worst("ctrl_requests")}
    samples = defaultdict(list)
    for r in by["one_change_sample"]:
        samples[(r["contender"], int(r["n"]), r["op"])].append(num(r, "wall_ms"))
    for (c, n, op), xs in samples.items():
        change[(c, n)].setdefault(op, {})["p50"] = med(xs)
    for r in by["one_change_capture"]:
        c, n = r["contender"], int(r["n"])
        ops_n = num(r, "ops") or 1
        total = sum(num(r, k) or 0 for k in ("ipvs_requests", "ctrl_requests", "other_requests"))
        if c == "ipvsadm":
            e = change[(c, n)].setdefault(r["op"], {})
            e["req"], e["dumps"] = num(r, "ipvs_requests"), num(r, "ipvs_dumps")
            e["ctrl"] = num(r, "ctrl_requests")
        elif c == "go-ipvs":
            # One capture of a whole run: 5 operations plus one family lookup.
            for op in OPS:
                e = change[(c, n)].setdefault(op, {})
                e["req"] = (num(r, "ipvs_requests") or 0) / ops_n
                e["dumps"] = num(r, "ipvs_dumps")
        else:
            change[("capture", n)]["lib"] = {"ipvs": num(r, "ipvs_requests"), "total": total,
                                              "ops": ops_n}
    for (c, n), ops in sorted(change.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if c == "capture":
            continue
        for op in OPS:
            e = ops.get(op, {})
            out.append(("one_change", c, n, 10, e.get("p50"), f"ms_p50_{op}"))
        for op in OPS:
            e = ops.get(op, {})
            out.append(("one_change_requests", c, n, 10, e.get("req"), f"ipvs_requests_{op}"))
            if e.get("ctrl") is not None:
                out.append(("one_change_requests", c, n, 10, e.get("ctrl"), f"ctrl_requests_{op}"))
            if e.get("other") is not None:
                out.append(("one_change_requests", c, n, 10, e.get("other"), f"other_requests_{op}"))

    # --- full read -------------------------------------------------------------------------
    reads = defaultdict(list)
    reads_cpu = defaultdict(list)
    reads_user = defaultdict(list)
    for r in by["full_read"]:
        key = (r["contender"], int(r["n"]), int(r["m"]))
        reads[key].append(num(r, "wall_ms"))
        reads_cpu[key].append(num(r, "cpu_ms"))
        reads_user[key].append(num(r, "user_ms"))
    read_med = {}
    for key in sorted(reads, key=lambda k: (k[1] * k[2], k[1], CONTENDERS.index(k[0]))):
        w, cpu = med(reads[key]), med(reads_cpu[key])
        read_med[key] = w / 1e3 if w is not None else None
        out.append(("full_read", key[0], key[1], key[2], read_med[key], "s_wall_median"))
        out.append(("full_read", key[0], key[1], key[2], cpu / 1e3 if cpu is not None else None, "s_cpu_median"))

    # --- no-op resync, memory -------------------------------------------------------------
    resync = None  # periodic resyncs of a daemon with a short interval
    adopt = {}  # n -> the adopting full sync of a daemon on its own table
    for r in by["agent_adopt"]:
        n, m = int(r["n"]), int(r["m"])
        hz = num(r, "hz") or 100
        adopt[n] = {"m": m, "cpu": (num(r, "sync_thread_ticks") or 0) / hz,
                    "sync_s": (num(r, "sync_ms") or 0) / 1e3, "ops": r.get("sync_ops"),
                    "wall": num(r, "wall_s"), "proc_cpu": (num(r, "process_ticks") or 0) / hz}
        out.append(("noop_resync_cpu", "agent", n, m, adopt[n]["cpu"], "s_cpu_adopting_resync_sync_thread"))
        out.append(("noop_resync_cpu", "agent", n, m, adopt[n]["sync_s"], "s_wall_adopting_resync"))
    for r in by["noop_resync_periodic"]:
        hz = num(r, "hz") or 100
        k = num(r, "resyncs")
        if k:
            resync = (int(r["n"]), int(r["m"]), (num(r, "process_ticks") or 0) / hz / k, r,
                      (num(r, "sync_thread_ticks") or 0) / hz / k)
            out.append(("noop_resync_cpu", "agent", resync[0], resync[1], resync[2], "s_cpu_per_periodic_resync"))
            out.append(("noop_resync_cpu", "agent", resync[0], resync[1], resync[4],
                        "s_cpu_per_periodic_resync_sync_thread"))
    # A change made while a no-op full resync runs: rename → kernel, per round.
    during = defaultdict(list)  # (n, m) -> elapsed_ms per round
    for r in by["resync_change"]:
        v = num(r, "elapsed_ms")
        if v is not None:
            during[(int(r["n"]), int(r["m"]))].append(v)
    for (n, m), xs in sorted(during.items()):
        xs.sort()
        p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
        out.append(("apply_latency_during_resync_p99", "agent", n, m, p99, "ms"))
        out.append(("apply_latency_during_resync_p50", "agent", n, m, med(xs), "ms"))
    for r in by["health_cpu"]:
        n, m = int(r["n"]), int(r["m"])
        out.append(("health_cpu", "agent", n, m, num(r, "cpu_share"), "cpu_share_probing_5s_interval"))
        # A target is probed every 5 s: the rate the node kept up with.
        wall = num(r, "wall_s")
        ok = num(r, "probes_ok")
        if wall and ok is not None:
            out.append(("health_cpu", "agent", n, m, ok / wall, "probes_ok_per_s"))
        out.append(("health_cpu", "agent", n, m, num(r, "probes_failed"), "probes_failed_in_window"))
    skipped = defaultdict(list)
    for r in by["skipped"]:
        skipped[(int(r["n"]), int(r["m"]))].append(r.get("what"))
    max_n = next((r.get("max_n") for r in by["skipped"]), None)
    for (n, m), whats in sorted(skipped.items()):
        metric = {"converge": "converge", "daemon": "rss", "stress": "rss"}.get(whats[0], whats[0])
        limit = (f"not_run_above_{max_n}_services" if whats[0] != "stress"
                 else f"not_run_above_{by['config'][0].get('agent_max_rs', '?') if by['config'] else '?'}_realservers")
        out.append((metric, "agent", n, m, None, limit))
    rss = {}
    rss_musl = {}
    for r in by["rss"]:
        n, m = int(r["n"]), int(r["m"])
        c = r.get("contender", "agent")
        v = (num(r, "vmhwm_kb") / 1024, num(r, "vmrss_kb") / 1024)
        (rss_musl if c == "agent-musl" else rss)[n] = v
        out.append(("rss", c, n, m, v[0], "MiB_VmHWM"))
        out.append(("rss", c, n, m, v[1], "MiB_VmRSS"))
    stress = None
    for r in by["rss_stress"]:
        ok = r.get("rc") == "0"
        stress = (num(r, "maxrss_kb") / 1024 if ok else None, r.get("pool"), num(r, "wall_ms"), r.get("n"))
        out.append(("rss", "agent", int(r["n"]), int(r["m"]), stress[0],
                    f"MiB_peak_with_{r.get('pool')}_realservers"))

    # --- agent memory in Kubernetes mode (joined lab) -------------------------------------
    k8s_rss = {}  # what -> row
    for r in by["rss_k8s"]:
        n, m, what = int(r["n"]), int(r["m"]), r.get("what", "?")
        k8s_rss[what] = r
        if what == "converged":
            out.append(("rss", "agent", n, m, num(r, "vmrss_kb") / 1024, "MiB_VmRSS_kubernetes_mode_converged"))
            out.append(("rss", "agent", n, m, num(r, "vmhwm_kb") / 1024, "MiB_VmHWM_kubernetes_mode_populate_and_converge"))
        elif what == "relist":
            out.append(("rss", "agent", n, m, num(r, "vmhwm_kb") / 1024, "MiB_VmHWM_kubernetes_mode_relist_peak"))
            out.append(("rss", "agent", n, m, num(r, "vmrss_kb") / 1024, "MiB_VmRSS_kubernetes_mode_after_relist"))

    # --- apply -> kernel latency (joined lab) -----------------------------------------------
    apply_rows = by["apply_latency"]
    if apply_rows:
        for r in apply_rows:
            out.append(("apply_latency_p50", r["contender"], r.get("n", ""), r.get("m", ""), num(r, "p50_ms"), "ms"))
            out.append(("apply_latency_p99", r["contender"], r.get("n", ""), r.get("m", ""), num(r, "p99_ms"), "ms"))
    else:
        out.append(("apply_latency_p50", "agent", "", "", None, "ms_not_measured"))
        out.append(("apply_latency_p99", "agent", "", "", None, "ms_not_measured"))

    # --- director HA failover (joined lab) --------------------------------------------------
    fo = by["failover_sample"]
    fo_s = [num(r, "failover_s") for r in fo if num(r, "failover_s") is not None]
    fo_arp = [num(r, "arp_s") for r in fo if num(r, "arp_s") is not None]
    spreads = [(int(r["max"]), int(r["min"]), r) for r in by["vips_spread"]]
    # The worst spread seen once settled (setup and after every takeover).
    worst_spread = max(spreads, key=lambda t: (t[0] - t[1], t[0]), default=None)
    fo_vips = worst_spread[2].get("vips", "") if worst_spread else ""
    fo_dirs = worst_spread[2].get("directors", "") if worst_spread else ""
    if fo_s:
        out.append(("failover_s", "agent", fo_vips, fo_dirs, med(fo_s), f"s_median_of_{len(fo_s)}_takeovers"))
        out.append(("failover_s", "agent", fo_vips, fo_dirs, max(fo_s), f"s_max_of_{len(fo_s)}_takeovers"))
        out.append(("failover_arp_s", "agent", fo_vips, fo_dirs, med(fo_arp), f"s_median_of_{len(fo_arp)}_takeovers"))
        out.append(("failover_arp_s", "agent", fo_vips, fo_dirs, max(fo_arp) if fo_arp else None,
                    f"s_max_of_{len(fo_arp)}_takeovers"))
    else:
        out.append(("failover_s", "agent", "", "", None, "s_not_measured"))
    if worst_spread:
        out.append(("vips_spread", "agent", fo_vips, fo_dirs, worst_spread[0], "vips_max_per_director"))
        out.append(("vips_spread", "agent", fo_vips, fo_dirs, worst_spread[1], "vips_min_per_director"))
    else:
        out.append(("vips_spread", "agent", "", "", None, "not_measured"))

    # --- the control plane at scale (cp.sh, cluster lab) ----------------------------------
    cp_catch = by["operator_status_catchup"]
    cp_conv = by["cp_converge"]
    cp_idle = by["agent_api_rps_idle"]
    cp_floor = by["apiserver_write_floor"]
    # The operator's peak over a whole run: the idle line comes last.
    cp_peak = {}
    for r in cp_catch + cp_conv + cp_idle:
        hw = num(r, "vmhwm_kb")
        if hw is not None:
            key = (r.get("n"), r.get("m"))
            cp_peak[key] = max(cp_peak.get(key, 0), hw / 1024)
    for r in cp_catch:
        out.append(("operator_status_catchup_s", "operator", r.get("n"), r.get("m"), num(r, "catchup_s"), "s"))
    for r in cp_conv:
        out.append(("cp_converge_s", "operator", r.get("n"), r.get("m"), num(r, "converge_s"), "s"))
    for (n, m), hw in sorted(cp_peak.items(), key=lambda kv: int(kv[0][1] or 0)):
        out.append(("operator_rss", "operator", n, m, hw, "MiB_VmHWM"))
    for r in cp_idle:
        out.append(("agent_api_rps_idle", "agent", r.get("n"), r.get("m"), num(r, "rps_per_100_agents"),
                    "requests_per_s_per_100_agents"))
    for r in cp_floor:
        out.append(("apiserver_write_floor_s", "apiserver", r.get("n"), "", num(r, "status_s"), "s_status_only"))
        out.append(("apiserver_write_floor_s", "apiserver", r.get("n"), "", num(r, "status_event_s"),
                    "s_status_and_event"))
    if not (cp_catch or cp_conv or cp_idle):
        for metric, c, unit in (("operator_status_catchup_s", "operator", "s_not_measured"),
                                ("cp_converge_s", "operator", "s_not_measured"),
                                ("operator_rss", "operator", "MiB_not_measured"),
                                ("agent_api_rps_idle", "agent", "not_measured")):
            out.append((metric, c, "", "", None, unit))

    with open(os.path.join(outdir, "results.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["metric", "contender", "n", "m", "value", "unit"])
        for metric, c, n, m, v, unit in out:
            w.writerow([metric, c, n, m, "NA" if v is None else f"{v:.6g}", unit])

    # --- targets ----------------------------------------------------------------------------
    targets = []

    def target(name, met, detail):
        targets.append((name, "n/a" if met is None else ("met" if met else "MISSED"), detail))

    big = max((k[1] for k in conv if k[2] == 10), default=None)
    if big:
        ipv = conv.get(("ipvsadm", big, 10), {}).get("wall")
        go = conv.get(("go-ipvs", big, 10), {}).get("wall")
        for c in (HOLDER, "lib-batch256", "agent"):
            t = conv.get((c, big, 10), {}).get("wall")
            if c == "agent" and t is None:
                n_a = max((k[1] for k in conv if k[0] == "agent" and k[2] == 10
                           and conv[k]["wall"] and ("ipvsadm", k[1], 10) in conv), default=None)
                why = (f"agent limited to {max_n} services in this run, see below" if max_n is not None
                       else "the agent was left out of this run")
                target(f"converge {sz(big)}×10, agent: ≥3× faster than ipvsadm -R", None,
                       f"not run at {big}×10 ({why})")
                if n_a is None:
                    continue
                big_a = n_a
                ipv_a = conv[("ipvsadm", big_a, 10)]["wall"]
                go_a = conv.get(("go-ipvs", big_a, 10), {}).get("wall")
                t = conv[("agent", big_a, 10)]["wall"]
                r1, r2 = ratio(ipv_a, t), ratio(go_a, t)
                target(f"converge {sz(big_a)}×10 (largest run), agent: ≥3× faster than ipvsadm -R",
                       None if r1 is None else r1 >= 3, f"{fmt(r1)}× (ipvsadm {fmt(ipv_a)} s, agent {fmt(t)} s)")
                target(f"converge {sz(big_a)}×10 (largest run), agent: ≥2× faster than go-ipvs",
                       None if r2 is None else r2 >= 2, f"{fmt(r2)}× (go-ipvs {fmt(go_a)} s, agent {fmt(t)} s)")
                continue
            r1, r2 = ratio(ipv, t), ratio(go, t)
            target(f"converge {sz(big)}×10, {c}: ≥3× faster than ipvsadm -R",
                   None if r1 is None else r1 >= 3, f"{fmt(r1)}× (ipvsadm {fmt(ipv)} s, {c} {fmt(t)} s)")
            target(f"converge {sz(big)}×10, {c}: ≥2× faster than go-ipvs",
                   None if r2 is None else r2 >= 2, f"{fmt(r2)}× (go-ipvs {fmt(go)} s, {c} {fmt(t)} s)")
    ns = sorted({n for (c, n) in change if c == "agent"})
    for c in ("agent", HOLDER):
        ns_c = sorted({n for (cc, n) in change if cc == c})
        if not ns_c:
            target(f"one change, {c}", None, "not measured")
            continue
        worst_req = max((e.get("req") or 0) for n in ns_c for e in change[(c, n)].values())
        dumps = sum((e.get("dumps") or 0) for n in ns_c for e in change[(c, n)].values())
        target(f"one change, {c}: ≤2 IPVS netlink requests, no dump",
               worst_req <= 2 and dumps == 0,
               f"worst {fmt(worst_req)} requests per change, {fmt(dumps)} dumps (N = {', '.join(map(str, ns_c))})")
        if len(ns_c) >= 2:
            lo, hi = ns_c[0], ns_c[-1]
            rs = []
            for op in OPS:
                a = change[(c, lo)].get(op, {}).get("p50")
                b = change[(c, hi)].get(op, {}).get("p50")
                rs.append((op, ratio(b, a)))
            worst = max((r for _, r in rs if r is not None), default=None)
            target(f"one change, {c}: t({sz(hi)})/t({sz(lo)}) ≤ 1.5",
                   None if worst is None else worst <= 1.5,
                   "; ".join(f"{op} {fmt(r)}" for op, r in rs))
    rk = [k for k in read_med if k[2] == 1]
    if rk:
        n16 = max(k[1] for k in rk)
        a, b = read_med.get((HOLDER, n16, 1)), read_med.get(("ipvsadm", n16, 1))
        r = ratio(a, b)
        target(f"full read {sz(n16)}×1: library ≤ 0.5× ipvsadm -Sn",
               None if r is None else r <= 0.5, f"{fmt(r)}× (library {fmt(a)} s, ipvsadm -Sn {fmt(b)} s)")
    if 10000 in rss:
        target("agent RSS ≤ 40 MB at 10k×10", rss[10000][0] <= 40 * 1e6 / 2**20,
               f"VmHWM {fmt(rss[10000][0])} MiB, VmRSS {fmt(rss[10000][1])} MiB")
    elif rss:
        nmax = max(rss)
        target("agent RSS ≤ 40 MB at 10k×10", None if rss[nmax][0] <= 40 * 1e6 / 2**20 else False,
               f"10k×10 not run; at {nmax}×10 already VmHWM {fmt(rss[nmax][0])} MiB, "
               f"VmRSS {fmt(rss[nmax][1])} MiB")
    else:
        target("agent RSS ≤ 40 MB at 10k×10", None, "not measured")
    if 10000 in rss_musl:
        target("agent-musl (the image's static binary) RSS ≤ 40 MB at 10k×10",
               rss_musl[10000][1] <= 40 * 1e6 / 2**20,
               f"VmRSS {fmt(rss_musl[10000][1])} MiB, VmHWM {fmt(rss_musl[10000][0])} MiB")
    else:
        target("agent-musl (the image's static binary) RSS ≤ 40 MB at 10k×10", None, "not measured")
    if resync:
        target(f"no-op periodic resync at {sz(resync[0])}×{resync[1]}: ≤ 2 CPU seconds", resync[2] <= 2,
               f"{fmt(resync[2])} s for the process, {fmt(resync[4])} s in the `sync` thread")
    else:
        target("no-op periodic resync ≤ 2 CPU seconds", None, "not measured")
    if during:
        for (n, m), xs in sorted(during.items()):
            p99 = xs[min(len(xs) - 1, int(0.99 * len(xs)))]
            target(f"a change during a full resync at {sz(n)}×{m}: apply→kernel p99 ≤ 250 ms", p99 <= 250,
                   f"p99 {fmt(p99)} ms, p50 {fmt(med(xs))} ms, max {fmt(max(xs))} ms over {len(xs)} changes")
    else:
        target("a change during a full resync: apply→kernel p99 ≤ 250 ms", None, "not measured")
    if "converged" in k8s_rss:
        r = k8s_rss["converged"]
        rl = k8s_rss.get("relist", {})
        hw = num(r, "vmhwm_kb") / 1024
        peak = max(hw, (num(rl, "vmhwm_kb") or 0) / 1024)
        target(f"agent RSS ≤ 40 MB at {sz(int(r['n']))}×{r['m']}, Kubernetes mode (no target of its own; the same bound)",
               peak <= 40 * 1e6 / 2**20,
               f"VmRSS {fmt(num(r, 'vmrss_kb') / 1024)} MiB converged, VmHWM {fmt(hw)} MiB while the objects "
               f"were created, {fmt((num(rl, 'vmhwm_kb') or 0) / 1024)} MiB peak during a forced relist")
    if apply_rows:
        p99 = max(num(r, "p99_ms") or 0 for r in apply_rows)
        target("apply→kernel p99 ≤ 150 ms", p99 <= 150,
               "; ".join(f"p99 {fmt(num(r, 'p99_ms'))} ms, p50 {fmt(num(r, 'p50_ms'))} ms over {r.get('changes', '?')} "
                         f"changes with {r.get('n')} VirtualServices" for r in apply_rows))
    else:
        target("apply→kernel p99 ≤ 150 ms", None,
               "not measured in this run (the joined-lab part did not run or failed)")

    floor = cp_floor[0] if cp_floor else {}
    floor_note = (f" (the API server's floor for one step, no operator running: {floor.get('status_event_s')} s "
                  f"for {floor.get('n')} status writes with an Event each, {floor.get('status_s')} s without)"
                  if floor else "")
    if cp_catch:
        worst = max(num(r, "catchup_s") or 0 for r in cp_catch)
        target("operator: last of the VirtualServices written → every status current ≤ 30 s", worst <= 30,
               "; ".join(f"{fmt(num(r, 'catchup_s'))} s with {r.get('n')} VirtualServices, {r.get('m')} nodes"
                         for r in cp_catch) + floor_note)
    else:
        target("operator: status catch-up ≤ 30 s", None, "not measured in this run (cp part left out or failed)")
    if cp_conv:
        worst = max(num(r, "converge_s") or 0 for r in cp_conv)
        target("control plane: agents' reports written → every VirtualService Programmed ≤ 10 s", worst <= 10,
               "; ".join(f"{fmt(num(r, 'converge_s'))} s with {r.get('m')} agents" for r in cp_conv) + floor_note)
    if cp_peak:
        worst = max(cp_peak.values())
        target("operator RSS ≤ 150 MB", worst <= 150 * 1e6 / 2**20,
               "; ".join(f"VmHWM {fmt(hw)} MiB with {m} agents" for (n, m), hw in cp_peak.items()))
    if cp_idle:
        worst = max(num(r, "rps_per_100_agents") or 0 for r in cp_idle)
        target("agents at rest ≤ 1 API request/s per 100 agents", worst <= 1,
               "; ".join(f"{fmt(num(r, 'rps_per_100_agents'))} with {r.get('m')} agents" for r in cp_idle))

    fo_anchor = "anchors: kube-vip about 3 s on average, keepalived's default VRRP timing about 3.6 s, MetalLB layer 2 10 s"
    if fo_s:
        target("director failover (kill -9 of the active agent → first answered request through the standby): "
               "median ≤ 2 s, max ≤ 3 s", med(fo_s) <= 2 and max(fo_s) <= 3,
               f"median {fmt(med(fo_s))} s, max {fmt(max(fo_s))} s over {len(fo_s)} takeovers ({fo_anchor})")
    else:
        target("director failover: median ≤ 2 s, max ≤ 3 s", None,
               "not measured in this run (the failover part did not run or failed)")

    # --- plot -------------------------------------------------------------------------------
    png = os.path.join(outdir, "converge-time-vs-n.png")
    if plot and not conv:
        # --joined-only: no converge rows to draw.
        print("report.py: no converge results; no plot", file=sys.stderr)
        plot = False
    if plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        ms = sorted({k[2] for k in conv})
        fig, axes = plt.subplots(1, len(ms), figsize=(6 * len(ms), 4.5), squeeze=False)
        for ax, m in zip(axes[0], ms):
            for c in CONTENDERS:
                pts = sorted((k[1], v["wall"]) for k, v in conv.items()
                             if k[0] == c and k[2] == m and v["wall"])
                if pts:
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=c)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("N (services)")
            ax.set_ylabel("converge wall time (s, qemu TCG)")
            ax.set_title(f"Converge from empty, M = {m} destinations/service")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(png, dpi=110)

    # --- report.md and the printed table -------------------------------------------------------
    L = []
    L.append("# Benchmark report")
    L.append("")
    L.append(f"One run in one VM: kernel {env.get('kernel', '?')}, {env.get('cpus', '?')} vCPUs, "
             f"{int(num(env, 'mem_kb') or 0) // 1024} MiB, qemu TCG (no KVM), "
             f"ipvsadm {env.get('ipvsadm', '?').replace('_', ' ')}. "
             "TCG makes absolute times meaningless; compare the ratios.")
    if wall_s is not None:
        L.append(f"`make bench` wall time: {wall_s/60:.1f} min.")
    if host:
        L.append(f"Host load average before/after: {host.get('load_before')} / {host.get('load_after')}; "
                 f"other qemu VMs sharing the 2 host cores: {host.get('other_vms_before')} at the start, "
                 f"{host.get('other_vms_after')} at the end (they slow every contender alike, but not "
                 "evenly over time).")
    L.append("")
    L.append("## Targets")
    L.append("")
    L.append("| Target | Result | Detail |")
    L.append("|---|---|---|")
    for name, res, detail in targets:
        L.append(f"| {name} | {res} | {detail} |")
    L.append("")
    L.append("## Converge from empty")
    L.append("")
    L.append("Wall seconds (process start to exit, reading the rules/manifests included), "
             "ratio to ipvsadm -R in brackets (above 1 = faster than ipvsadm), CPU seconds "
             "(user+sys of the process, kernel work in its syscalls included) and ops/s. "
             "Every end state was compared with the rules "
             f"({sum(1 for c in checks if c.get('ok') == '1')} of {len(checks)} tables identical), "
             f"{sum(1 for c in checks if c.get('via', 'ipvsadm') == 'ipvsadm')} of them listed by `ipvsadm -Sn`"
             + ("; above the size in `BENCH_CHECK_IPVSADM_MAX`, ipvsadm's own table is listed by both "
                "`ipvsadm -Sn` and the library's dump, and the other contenders' by that dump "
                f"({sum(1 for c in checks if c.get('via') == 'lib-read')} tables)."
                if any(c.get('via') == 'lib-read' for c in checks) else "."))
    L.append("")
    sizes = sorted({(k[1], k[2]) for k in conv}, key=lambda s: (s[1], s[0]))
    L.append("| N×M | " + " | ".join(c for c in CONTENDERS) + " |")
    L.append("|---|" + "---|" * len(CONTENDERS))
    for n, m in sizes:
        base = conv.get(("ipvsadm", n, m), {}).get("wall")
        cells = []
        for c in CONTENDERS:
            v = conv.get((c, n, m))
            if not v or v["wall"] is None:
                cells.append("–")
                continue
            r = ratio(base, v["wall"])
            cells.append(f"{fmt(v['wall'])} s [{fmt(r)}×], cpu {fmt(v['cpu'])} s, "
                         f"{fmt(v['ops'] / v['wall'])} ops/s")
        L.append(f"| {n}×{m} | " + " | ".join(cells) + " |")
    L.append("")
    L.append(f"Plot: `{os.path.basename(png)}` (wall time against N, log-log, per contender).")
    L.append("")
    conf = by["config"][0] if by["config"] else {}
    poll_ms = conf.get("change_poll_ms", "100")
    wait_ms = conf.get("change_wait_poll_ms", "20")
    rounds = conf.get("change_repeat", "1")
    captured = conf.get("change_capture", rounds)
    L.append("## One change in a table of N (M = 10)")
    L.append("")
    L.append("Median latency of one change in ms (ipvsadm: one process per change, as it is used; "
             "libraries: one call in a running process; agent: manifest written → change visible in "
             f"the kernel, polled every {wait_ms} ms; inotify wakes the agent on the rename, its "
             f"{poll_ms} ms directory poll is the fallback; the median of {rounds} rounds of the four "
             f"changes, and the most requests any of the first {captured} round(s) sent). "
             "In brackets: IPVS netlink requests per change, from an nlmon capture (libraries: the "
             "client's counters, cross-checked below), with dumps and rtnetlink requests (VIP "
             "addresses) named when there were any. Family lookups (nlctrl) are not counted: "
             "ipvsadm makes 3 per change (it opens a socket per request), the libraries and the "
             "agent 1 per process. The harness's own polling is stamped and left out.")
    L.append("")
    L.append("| N | contender | " + " | ".join(OPS) + " |")
    L.append("|---|---|" + "---|" * len(OPS))
    for (c, n) in sorted(change, key=lambda k: (k[1], CONTENDERS.index(k[0]) if k[0] in CONTENDERS else 99)):
        if c == "capture":
            continue
        cells = []
        for op in OPS:
            e = change[(c, n)].get(op, {})
            extra_s = (f" [{fmt(e.get('req'))} req"
                       + (f", {fmt(e.get('dumps'))} dumps" if e.get("dumps") else "")
                       + (f", {fmt(e.get('other'))} rtnl" if e.get("other") else "") + "]") \
                if e.get("req") is not None else ""
            cells.append(f"{fmt(e.get('p50'))}{extra_s}")
        L.append(f"| {n} | {c} | " + " | ".join(cells) + " |")
    for (c, n), v in change.items():
        if c == "capture":
            lib = v["lib"]
            L.append("")
            L.append(f"Cross-check at N={n}: an nlmon capture of the library doing {int(lib['ops'])} "
                     f"changes saw {fmt(lib['ipvs'])} IPVS requests ({fmt(lib['total'])} netlink "
                     "requests with the family lookup).")
    L.append("")
    L.append("## Full read")
    L.append("")
    L.append("Median wall seconds of a whole-table read; ratio to `ipvsadm -Sn` in brackets "
             "(below 1 = faster than ipvsadm). The library reads with one GET_SERVICE dump plus "
             "one GET_DEST dump per service (batch size does not apply to dumps).")
    L.append("")
    rsizes = sorted({(k[1], k[2]) for k in read_med}, key=lambda s: (s[0] * s[1], s[0]))
    L.append("| N×M | ipvsadm -Sn | library | go-ipvs | user-space share of CPU: ipvsadm / library |")
    L.append("|---|---|---|---|---|")
    for n, m in rsizes:
        b = read_med.get(("ipvsadm", n, m))
        a = read_med.get((HOLDER, n, m))
        g = read_med.get(("go-ipvs", n, m))

        def share(c):
            u, t = med(reads_user[(c, n, m)]), med(reads_cpu[(c, n, m)])
            return f"{100 * u / t:.0f}%" if u is not None and t else "n/a"
        L.append(f"| {n}×{m} | {fmt(b)} s | {fmt(a)} s [{fmt(ratio(a, b))}×] | {fmt(g)} s [{fmt(ratio(g, b))}×] "
                 f"| {share('ipvsadm')} / {share(HOLDER)} |")
    L.append("")
    L.append("## Agent: no-op resync and memory")
    L.append("")
    if adopt:
        L.append("Adopting resync: a daemon started on the table its `--once` run built reads the kernel, "
                 "finds nothing to change and reports 0 ops. CPU of its `sync` thread (the reconciler, "
                 "kernel time of its dumps included) and the sync's own duration:")
        L.append("")
        L.append("| N×M | sync CPU (s) | sync wall (s) | ops | daemon start → synced (s) |")
        L.append("|---|---|---|---|---|")
        for n in sorted(adopt):
            a = adopt[n]
            L.append(f"| {n}×{a['m']} | {fmt(a['cpu'])} | {fmt(a['sync_s'])} | {a['ops']} | {fmt(a['wall'])} |")
        L.append("")
    if resync:
        r = resync[3]
        how = ("each started with SIGHUP, the same full sync the resync timer runs"
               if r.get("trigger") == "sighup" else f"interval {r.get('interval_s')} s")
        L.append(f"Periodic no-op resync at {resync[0]}×{resync[1]}: {fmt(resync[2])} CPU seconds per resync "
                 f"for the process ({fmt(resync[4])} s in the `sync` thread; {r.get('resyncs')} resync(s), "
                 f"{how}; last one {r.get('last_sync_ms')} ms and "
                 f"{r.get('last_sync_ops')} ops).")
    else:
        L.append("Periodic no-op resync: not measured in this run.")
    L.append("")
    if rss:
        L.append("| N×10 | VmHWM (MiB) | VmRSS (MiB) |")
        L.append("|---|---|---|")
        for n in sorted(rss):
            L.append(f"| {n} | {fmt(rss[n][0])} | {fmt(rss[n][1])} |")
        L.append("")
        L.append("Daemon in standalone mode, read after its first (adopting) sync.")
    if stress and stress[0] is None:
        L.append("")
        L.append(f"Stress: the `--once` reconcile with {stress[1]} RealServer objects failed (see Problems); no figure.")
    elif stress:
        L.append("")
        L.append(f"Stress: {stress[1]} RealServer objects ({stress[3]} VirtualServices × 10 destinations "
                 f"selected from them), one `--once` reconcile: peak RSS {fmt(stress[0])} MiB, "
                 f"{fmt((stress[2] or 0) / 1e3)} s.")
    L.append("")
    # --- what bounds the misses -----------------------------------------------------------
    B = []
    rk16 = [k for k in read_med if k[0] == HOLDER and k[2] == 1]
    if rk16:
        n16 = max(k[1] for k in rk16)
        lu = med(reads_user[(HOLDER, n16, 1)])
        lc = med(reads_cpu[(HOLDER, n16, 1)])
        iu = med(reads_user[("ipvsadm", n16, 1)])
        ic = med(reads_cpu[("ipvsadm", n16, 1)])
        inner = [num(r, "inner_read_ms") for r in by["full_read"]
                 if r["contender"] == HOLDER and int(r["n"]) == n16 and int(r["m"]) == 1]
        text = (f"Full read {sz(n16)}×1: the library needs {n16 + 1} dumps (netlink serves one dump at a "
                f"time per socket, and GET_DEST takes one service): one request per service, against ipvsadm's two "
                f"on a fresh socket (family lookup, then the dump; see the ipvsadm capture in "
                f"ipvs/tests/fixtures/pcap/14-save.pcap).")
        if lu is not None and lc:
            text += (f" CPU split: library {fmt(lu / 1e3)} s user + {fmt((lc - lu) / 1e3)} s system, "
                     f"ipvsadm {fmt(iu / 1e3)} s user + {fmt((ic - iu) / 1e3)} s system: ")
            text += ("the library's own decoding (user time) is what keeps it above 0.5×."
                     if lu > (lc - lu) else
                     "kernel time (one dump per service, each under the IPVS mutex) dominates. The system "
                     f"time alone is {fmt((lc - lu) / 1e3 / read_med[('ipvsadm', n16, 1)])}× of ipvsadm -Sn's "
                     "wall time, which leaves little room under 0.5× for the library's user time (decoding, "
                     "process start, writing the table).")
        if inner and med(inner) is not None and read_med.get((HOLDER, n16, 1)):
            text += (f" Of its {fmt(read_med[(HOLDER, n16, 1)])} s, {fmt(med(inner) / 1e3)} s are the dump "
                     "itself; the rest is process start and writing the table out.")
        B.append(text)
    for n in sorted({k[1] for k in conv if k[0] == "agent"}):
        for m in sorted({k[2] for k in conv if k[0] == "agent" and k[1] == n}):
            v = conv[("agent", n, m)]
            lib = conv.get((HOLDER, n, m), {}).get("wall")
            sync_ms = num(v["inner"], "inner_sync_ms")
            if v["wall"] and sync_ms is not None and m == 10 and n == max(k[1] for k in conv if k[0] == "agent"):
                sys_s = (num(v["inner"], "sys_ms") or 0) / 1e3
                user_s = (num(v["inner"], "user_ms") or 0) / 1e3
                one = conv.get(("agent", n, 1), {}).get("wall")
                ipv1 = conv.get(("ipvsadm", n, 1), {}).get("wall")
                text = (f"Agent converge {sz(n)}×{m}: {fmt(v['wall'])} s wall, of which the reconcile (sync) "
                        f"took {fmt(sync_ms / 1e3)} s and loading the manifests the rest "
                        f"({fmt(v['wall'] - sync_ms / 1e3)} s: YAML parsing and validation). The sync issues the "
                        f"same {int(v['ops'])} IPVS operations the library applies in {fmt(lib)} s; its CPU is "
                        f"{fmt(sys_s)} s system against {fmt(user_s)} s user. ")
                if conf.get("vip_mode") == "route":
                    text += (f"Its VIPs are local routes (`--vip-mode route`): {n} route adds. Interface "
                             "addresses would cost O(N²) kernel time: 20k of them take minutes "
                             "(`e2e/bench/vip-cost.sh`). ")
                if sys_s > user_s:
                    text += ("The system time is the VIPs: the agent also owns one VIP address per service on "
                             "the director's interface, and each IPv4 address add walks that interface's address "
                             "list, so N adds cost O(N²) kernel time that `ipvsadm -R` (which adds no addresses) "
                             "does not pay")
                    if one and ipv1:
                        ops1 = conv.get(("agent", n, 1), {}).get("ops")
                        text += (f"; at {sz(n)}×1 ({int(ops1 or 0)} IPVS operations, still {n} VIPs) the agent "
                                 f"took {fmt(one)} s against ipvsadm's {fmt(ipv1)} s")
                    text += (". e2e/bench/vip-cost.sh measures 20k address adds against 20k local routes "
                             "(which would also make the node accept and ARP-answer the VIP).")
                else:
                    text += "So its time is the agent's own CPU (planning, diffing, bookkeeping)."
                B.append(text)
    ag = sorted({n for (c, n) in change if c == "agent"})
    if ag:
        rows = [r for r in by["one_change"] if r["contender"] == "agent"]
        per_n = {}
        for r in rows:
            per_n.setdefault(int(r["n"]), []).append(num(r, "sync_ms"))
        B.append(f"Agent one change: the latency is inotify waking the daemon on the rename (its directory "
                 f"poll, every {poll_ms} ms, is the fallback), reading the changed file, a scoped sync of the "
                 f"VirtualServices it affects, and the waiter's next poll (every {wait_ms} ms): "
                 "median sync "
                 + ", ".join(f"{fmt(med(v) / 1e3)} s at {sz(n)}" for n, v in sorted(per_n.items()) if med(v) is not None)
                 + ".")
    if rss:
        nmax = max(rss)
        B.append(f"Agent memory: VmHWM {fmt(rss[nmax][0])} MiB against VmRSS {fmt(rss[nmax][1])} MiB at "
                 f"{sz(nmax)}×10 after the first sync: the peak is transient (manifest loading and the first "
                 "sync); even the steady state is above the 40 MB target.")
    if B:
        L.append("## What bounds the misses")
        L.append("")
        for b in B:
            L.append(f"- {b}")
        L.append("")
    if skipped:
        L.append("## Not run")
        L.append("")
        cfg = by["config"][0] if by["config"] else {}
        L.append(f"The agent ran only up to {max_n} services and {cfg.get('agent_max_rs', '?')} RealServers "
                 "in this run: loading manifests costs it time quadratic in the number of objects "
                 "(`lvs_api::manifest::ManifestSet::extend` removes an earlier object with the same key by "
                 "`retain` over every object loaded so far, comparing `Meta::key()` strings it formats "
                 "anew for each comparison), and every load repeats it: daemon start, and every change "
                 "in the directory. The larger sizes would not finish within the 30-minute budget of "
                 "`make bench`. Set `BENCH_AGENT_MAX_N` / `BENCH_AGENT_MAX_RS` to run them.")
        L.append("")
        for r in by["skipped"]:
            extra_s = f" ({r.get('pool')} RealServers)" if r.get("what") == "stress" else ""
            L.append(f"- agent {r.get('n')}×{r.get('m')}: {r.get('what')}{extra_s}")
        L.append("")
    L.append("## Apply → kernel latency and memory in Kubernetes mode (joined lab)")
    L.append("")
    pop = by["joined_populate"][0] if by["joined_populate"] else None
    jc = by["joined_converge"][0] if by["joined_converge"] else None
    js = by["joined_sync"][0] if by["joined_sync"] else None
    jp = by["joined_latency_parts"][0] if by["joined_latency_parts"] else None
    jw = by["joined_wall"][0] if by["joined_wall"] else None
    jo = by["joined_operator"][0] if by["joined_operator"] else None
    if pop:
        L.append(f"Setup: {pop.get('n')} VirtualServices × {pop.get('m')} RealServers from a pool of {pop.get('pool')} "
                 f"({pop.get('objects')} objects) created in {fmt((num(pop, 'wall_ms') or 0) / 1e3)} s "
                 f"({pop.get('per_s')} objects/s, POSTs over HTTP/2 from the host).")
    if jc:
        L.append(f"dir1's kernel held {jc.get('services')} services and {jc.get('dests')} destinations "
                 f"{jc.get('from_populate_start_s')} s after the creation began (the agent ran meanwhile, "
                 f"following the watches); operator CPU {jc.get('operator_cpu')}, API server CPU "
                 f"{jc.get('apiserver_cpu')} (cumulative, [dd-]hh:mm:ss).")
    L.append("")
    if apply_rows:
        L.append("| N×M | changes | p50 (ms) | p90 (ms) | p99 (ms) | min–max (ms) | PATCH answered, p50/p99 (ms) | probe round trip (ms) |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in apply_rows:
            L.append(f"| {r.get('n')}×{r.get('m')} | {r.get('changes', '?')} | {r.get('p50_ms')} | {r.get('p90_ms', 'n/a')} | "
                     f"{r.get('p99_ms')} | {r.get('min_ms', '?')}–{r.get('max_ms', '?')} | "
                     f"{r.get('api_p50_ms', '?')}/{r.get('api_p99_ms', '?')} | {r.get('probe_rtt_p50_ms', '?')} |")
        L.append("")
        L.append("Each change is a merge PATCH of one RealServer's weight (the probe's own VirtualService, "
                 "so it is one destination update in the kernel) on a warm HTTP/2 connection, timed on the "
                 "host from just before the request to the arrival of the probe's report: a poller in dir1's "
                 "namespace reads the service's destinations over netlink every 10 ms and writes the weight "
                 "it sees to one TCP connection to the host. Both ends use the host's clock; the figure "
                 "overstates by up to one poll period plus half a probe round trip.")
        if js:
            L.append("")
            L.append(f"The agent's syncs during the changes: {js.get('incremental')} incremental, p50 "
                     f"{js.get('incr_p50_ms')} ms, p99 {js.get('incr_p99_ms')} ms; {js.get('full')} periodic full "
                     f"resyncs, p50 {js.get('full_p50_ms')} ms, max {js.get('full_max_ms')} ms (a change that "
                     "arrives during a full resync waits for it).")
        jst = by["joined_operator_settle"][0] if by["joined_operator_settle"] else None
        if jst:
            L.append("")
            settled = "settled" if jst.get("settled") == "1" else "had **not** settled (300 s passed)"
            L.append(f"Before the changes the operator (which restarts when the forced relist costs it its "
                     f"Lease, then reconciles every object once) {settled} {jst.get('settle_s')} s after the "
                     "relist: leader, and no reconcile for 5 s.")
        if jo:
            L.append("")
            L.append(f"The operator meanwhile (on the same two host cores as the API server and the VM): "
                     f"{jo.get('reconciles_during_changes')} reconciles and "
                     f"{jo.get('status_writes_during_changes')} status writes during the changes (the "
                     "changes themselves need one RealServer status at most).")
        if jp:
            L.append("")
            L.append("Where the time goes (e2e/bench/latency_parts.py, from the agent's log). Queueing and the "
                     "sync are timed on the VM's clock alone; the first and last parts need the VM's clock "
                     "aligned to the host's, done by the fastest change, and the guest clock drifts under TCG, "
                     "so the split between those two is approximate (their sum is not):")
            L.append("")
            L.append("| part | p50 (ms) | p90 (ms) | p99 (ms) |")
            L.append("|---|---|---|---|")
            for key, what in (("watch", "PATCH sent → the agent has the change (API server, watch, the VM's network, TLS and decoding under TCG)"),
                              ("queue", "→ its sync starts"),
                              ("sync", "the incremental sync (plan, kernel, ledger journal)"),
                              ("seen", "sync end → the probe's report on the host (poll every 10 ms, one TCP hop)")):
                L.append(f"| {what} | {jp.get(key + '_p50_ms')} | {jp.get(key + '_p90_ms')} | {jp.get(key + '_p99_ms')} |")
    if k8s_rss:
        L.append("")
        L.append("| agent in Kubernetes mode | VmRSS (MiB) | VmHWM (MiB) |")
        L.append("|---|---|---|")
        if "converged" in k8s_rss:
            r = k8s_rss["converged"]
            L.append(f"| {r['n']}×{r['m']} converged (peak: creating the objects and following them) | "
                     f"{fmt(num(r, 'vmrss_kb') / 1024)} | {fmt(num(r, 'vmhwm_kb') / 1024)} |")
        if "relist" in k8s_rss:
            r = k8s_rss["relist"]
            L.append(f"| after a forced relist (API server stopped 5 s; peak reset before) | "
                     f"{fmt(num(r, 'vmrss_kb') / 1024)} | {fmt(num(r, 'vmhwm_kb') / 1024)} |")
            L.append("")
            L.append(f"The relist completed {r.get('relist_s')} s after the API server was started again.")
    if jw:
        L.append("")
        L.append(f"The joined part took {jw.get('wall_s')} s (lab up {jc.get('lab_up_s') if jc else '?'} s).")
    if not apply_rows:
        L.append("Apply → kernel latency not measured in this run (run.sh --no-joined, or the joined part failed). "
                 "The rows `apply_latency_p50` / `apply_latency_p99` are `NA`. "
                 "Hook: have the joined lab write lines "
                 "`metric=apply_latency contender=agent n=N m=M p50_ms=X p99_ms=Y` to a file and pass "
                 "it to `e2e/bench/report.py --extra FILE` (run.sh passes `$BENCH_EXTRA` when set).")
    L.append("")
    L.append("## The control plane at scale (cluster lab, simulated agents)")
    L.append("")
    if cp_catch or cp_conv or cp_idle:
        cw = by["cp_wall"][0] if by["cp_wall"] else {}
        L.append("`cp.sh`: a fresh operator per agent count; VirtualServices each directed by 2 nodes; every "
                 "simulated agent a client of its own with a token bound to its Node, writing its LvsNode "
                 "as the agent does (see e2e/bench/README.md).")
        L.append("")
        L.append("| agents | VirtualServices | status catch-up (s) | operator CPU (s) | cp_converge (s) | "
                 "operator CPU (s) | operator VmHWM (MiB) | at rest: requests/s per 100 agents | operator CPU at rest (s) |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        def row_of(rs, m):
            return next((r for r in rs if r.get("m") == m), {})
        for m in sorted({r.get("m") for r in cp_catch + cp_conv + cp_idle}, key=lambda x: int(x or 0)):
            a, b, c = row_of(cp_catch, m), row_of(cp_conv, m), row_of(cp_idle, m)
            n = a.get("n") or b.get("n") or c.get("n")
            hw = next((v for (nn, mm), v in cp_peak.items() if mm == m), None)
            L.append(f"| {m} | {n} | {a.get('catchup_s', 'n/a')} | {a.get('operator_cpu_s', 'n/a')} | "
                     f"{b.get('converge_s', 'n/a')} | {b.get('operator_cpu_s', 'n/a')} | {fmt(hw)} | "
                     f"{c.get('rps_per_100_agents', 'n/a')} | {c.get('operator_cpu_s', 'n/a')} |")
        L.append("")
        if cp_idle:
            c = cp_idle[0]
            L.append(f"At rest: refresh {c.get('refresh_s')} s and watch timeout {c.get('watch_timeout_s')} s, "
                     f"both divided by {c.get('time_scale')} and the rate multiplied back; window "
                     f"{c.get('window_s')} s scaled; full watches: {c.get('full_watches')}.")
        if floor:
            L.append(f"The API server's write floor (`cp_sim --write-floor`, no operator running, the operator's "
                     f"ServiceAccount, {floor.get('in_flight')} requests in flight): {floor.get('n')} status writes "
                     f"in {floor.get('status_s')} s ({floor.get('status_writes_per_s')}/s), with an Event each in "
                     f"{floor.get('status_event_s')} s ({floor.get('with_events_writes_per_s')} writes/s); creating "
                     f"the objects took {floor.get('create_s')} s. One status step of the operator (every "
                     f"VirtualService's status once) cannot take less on this machine.")
        if cw:
            L.append(f"The part took {cw.get('wall_s')} s (lab up {cw.get('lab_up_s')} s); load at the end {cw.get('load')}.")
    else:
        L.append("Not measured in this run (`run.sh --only cp` runs it alone).")
    L.append("")
    L.append("## Director failover (joined lab, director HA)")
    L.append("")
    fw = by["failover_wall"][0] if by["failover_wall"] else {}
    if fo:
        L.append(f"{len(fo_s)} takeovers: **failover_s median {fmt(med(fo_s))} s, max {fmt(max(fo_s))} s** "
                 f"(min {fmt(min(fo_s))} s); the router's neighbour entry on the standby: median "
                 f"{fmt(med(fo_arp))} s, max {fmt(max(fo_arp) if fo_arp else None)} s. Goal: median ≤ 2 s, "
                 f"max ≤ 3 s ({fo_anchor}).")
        L.append("")
        L.append("Each takeover: kill -9 of the agent of the director active for one VIP (dir1 and dir2 in turn, "
                 "held down meanwhile), the time read from `/proc/uptime` in the command that kills; a GET of "
                 f"http://VIP/ from the client every {fw.get('probe_ms', '?')} ms on a new connection, each with "
                 "a 0.9 s connect limit (below the first SYN retransmission); the router's neighbour entry read "
                 "over rtnetlink every 20 ms; `failover_s` is the kill to the start of the first answered request "
                 "after the router's entry shows the standby's MAC (the first request through the standby); "
                 "\"restored\" is the kill to the first answered request "
                 "after the last failed one at all, so a failure after the takeover shows there and as \"failed "
                 "after\"; \"failed before\" counts the failures before the kill (the noise floor, or "
                 "takeovers nobody caused). Every time is the one VM's clock (the nodes are its network "
                 "namespaces). Between takeovers the agent restarts and every VIP goes back to its holder "
                 "from before the first takeover.")
        L.append("")
        L.append("| # | killed | VIP | failover (s) | router's entry (s) | restored (s) | failed before | "
                 "failed after the kill | of them after the takeover | settled after restart (s) | spread |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in fo:
            L.append(f"| {r.get('round')} | {r.get('killed')} | {r.get('vip')} | {r.get('failover_s')} | {r.get('arp_s')} | "
                     f"{r.get('restored_s', 'n/a')} | {r.get('failed_before', 'n/a')} | {r.get('failed')} | "
                     f"{r.get('failed_after', 'n/a')} | "
                     f"{r.get('settle_s')} | {r.get('spread')} |")
        L.append("")
    else:
        L.append("Not measured in this run (`run.sh --only failover` runs it alone). The rows `failover_s` and "
                 "`vips_spread` are `NA`.")
        L.append("")
    if worst_spread:
        L.append(f"vips_spread (VIPs per director, max/min, the worst seen once settled, at the setup and after "
                 f"every takeover): **{worst_spread[0]}/{worst_spread[1]}** with {fo_vips} VIPs over {fo_dirs} "
                 "directors.")
    if fw:
        L.append("")
        L.append(f"The failover part took {fw.get('wall_s')} s (lab up {fw.get('lab_up_s')} s); host load average "
                 f"before/after: {fw.get('load_before')} / {fw.get('load_after')}.")
    if problems or bad_checks:
        L.append("")
        L.append("## Problems in this run")
        L.append("")
        for p in problems:
            L.append(f"- {p}")
        for c in bad_checks:
            L.append(f"- table of {c.get('contender')} at {c.get('n')}×{c.get('m')} differs from the rules")
    text = "\n".join(L) + "\n"
    with open(os.path.join(outdir, "report.md"), "w") as f:
        f.write(text)
    print(text)
    return 1 if (problems or bad_checks) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
