#!/usr/bin/env python3
"""table.py DNSPERF_RUNS.csv SAT_RUNS.csv [EXTRA_NAME]: one table from one
run of the peer kit's bench.sh (dnsperf) and bench-sat.sh (blast) with
steerdns as the EXTRA target: per target and variant the medians over rounds
of QPS and server CPU us/query for both load generators, the ratio to the
ceiling server (blast), and steerdns's ratios to each target (CPU per query:
below 1 means steerdns uses less CPU per query; QPS: above 1 means it
answered more)."""
import csv
import statistics as st
import sys


def load(path, key):
    rows = list(csv.DictReader(open(path)))
    out = {}
    ceil = {(r["round"], r["variant"]): float(r["qps"]) for r in rows if r.get(key) == "ceiling"}
    for r in rows:
        k = (r[key], r["variant"])
        d = out.setdefault(k, {"qps": [], "us": [], "ratio": [], "lost": 0})
        d["qps"].append(float(r["qps"]))
        d["us"].append(float(r["server_cpu_us_per_query"]))
        d["lost"] += int(float(r.get("lost", 0) or 0))
        c = ceil.get((r["round"], r["variant"]))
        if c:
            d["ratio"].append(float(r["qps"]) / c)
    return {k: {"qps": st.median(v["qps"]), "us": st.median(v["us"]),
                "ratio": st.median(v["ratio"]) if v["ratio"] else None, "lost": v["lost"]}
            for k, v in out.items()}


def fmt(x, f="{:,.0f}"):
    return "-" if x is None else f.format(x)


def main():
    dp, sat = load(sys.argv[1], "peer"), load(sys.argv[2], "target")
    me = sys.argv[3] if len(sys.argv) > 3 else "steerdns"
    targets = []
    for t, _ in list(sat) + list(dp):
        if t not in targets:
            targets.append(t)
    targets.sort(key=lambda t: (t != me, t == "ceiling", t))
    print("| target | variant | dnsperf QPS | dnsperf server CPU us/query | blast QPS | blast server CPU us/query | blast vs ceiling | steerdns/target CPU us/query (dnsperf) | steerdns/target CPU us/query (blast) | steerdns/target QPS (blast) | lost |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for t in targets:
        for v in ("noecs", "ecs"):
            a, b = dp.get((t, v)), sat.get((t, v))
            if a is None and b is None:
                continue
            ma, mb = dp.get((me, v)), sat.get((me, v))
            r1 = ma["us"] / a["us"] if a and ma and t != me else None
            r2 = mb["us"] / b["us"] if b and mb and t != me else None
            r3 = mb["qps"] / b["qps"] if b and mb and t != me else None
            print(f"| {t} | {v} | {fmt(a and a['qps'])} | {fmt(a and a['us'], '{:.2f}')} | "
                  f"{fmt(b and b['qps'])} | {fmt(b and b['us'], '{:.2f}')} | {fmt(b and b['ratio'], '{:.2f}')} | "
                  f"{fmt(r1, '{:.2f}')} | {fmt(r2, '{:.2f}')} | {fmt(r3, '{:.2f}')} | "
                  f"{(a['lost'] if a else 0) + (b['lost'] if b else 0)} |")


if __name__ == "__main__":
    main()
