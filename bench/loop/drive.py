#!/usr/bin/env python3
"""The closed-loop driver of ../shared/loop (run.py) with a demand schedule.

    drive.py ADDR PORT SCENARIO [run.py options] [--schedule T:L,T:L,...]

run.py ramps demand linearly from A to B.  Scenarios that need another shape
(a sudden surge, a sudden drop) give a "schedule": [[t, level], ...] in
seconds and fractions of the total capacity, joined by straight lines; two
points at the same t make a step.  --schedule overrides the scenario's.
Without a schedule this is run.py itself (the same code runs).

Everything else is run.py's: queries, fixtures and the summary are its
functions (imported), and the tick loop below is its loop with only the
demand line changed, so results compare with run.py's row for row.
"""
import argparse
import bisect
import csv
import itertools
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOOP = os.environ.get('LOOP_DIR', os.path.join(HERE, '..', '..', '..', 'shared', 'loop'))
sys.path.insert(0, LOOP)
import run  # noqa: E402  (the harness's driver)
import scenario  # noqa: E402


def level_at(schedule, t):
    """Demand level at t: linear between points, a step where two share t."""
    ts = [p[0] for p in schedule]
    k = bisect.bisect_right(ts, t)
    if k == 0:
        return schedule[0][1]
    if k == len(schedule):
        return schedule[-1][1]
    (t0, l0), (t1, l1) = schedule[k - 1], schedule[k]
    return l0 if t1 == t0 else l0 + (l1 - l0) * (t - t0) / (t1 - t0)


def main():
    # SIGTERM (from loopbench.py) unwinds like an exception, so the
    # `finally` below (or run.py's) stops the fixtures by their PID.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('server')
    ap.add_argument('port', type=int)
    ap.add_argument('scenario')
    ap.add_argument('--name', default='run')
    ap.add_argument('--duration', type=float, default=120)
    ap.add_argument('--tick', type=float, default=1)
    ap.add_argument('--ttl-cap', type=float, default=5)
    ap.add_argument('--ramp')
    ap.add_argument('--schedule', help='T:LEVEL,T:LEVEL,... (overrides the scenario)')
    ap.add_argument('--timeout', type=float)
    ap.add_argument('--warmup', type=float, default=3)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--out', default=os.environ.get('LOOP_OUT') or os.path.join(os.environ.get('TMPDIR', '/tmp'), 'loop-results'))
    ap.add_argument('--external-fixtures', action='store_true')
    a = ap.parse_args()
    scn = scenario.load(a.scenario)
    schedule = scn.get('schedule')
    if a.schedule:
        schedule = [[float(x) for x in p.split(':')] for p in a.schedule.split(',')]
    if not schedule or a.ramp:
        # No schedule: exactly run.py.
        sys.argv = [os.path.join(LOOP, 'run.py')] + sys.argv[1:]
        sys.argv = [x for x in sys.argv if not x.startswith('--schedule')]
        return run.main()
    a.ramp = 'schedule ' + ' '.join(f'{t:g}:{lv:g}' for t, lv in schedule)
    timeout = a.timeout or min(0.5, a.tick / 2)
    clusters = {c['id']: c for c in scn['clusters']}
    by_ip = {c['ip']: c for c in scn['clusters']}
    total_cap = sum(c['capacity_mbps'] for c in clusters.values())
    clients = scn['clients']
    for cl in clients:
        cl.update(cluster=None, last=None, expiry=0.0)
    rnd, qid = random.Random(a.seed), itertools.cycle(range(65536))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    server = (a.server, a.port)
    fx = None
    if not a.external_fixtures:
        fx = subprocess.Popen([sys.executable, os.path.join(LOOP, 'fixtures.py'), a.scenario,
                               '--lifetime', str(a.duration + a.warmup + 60)],
                              stdout=subprocess.DEVNULL)
    zero = {s['id']: 0 for c in clusters.values() for s in c['servers']}
    rows, ticks = [], int(round(a.duration / a.tick))
    out = os.path.join(a.out, a.name)
    os.makedirs(out, exist_ok=True)
    f = open(os.path.join(out, 'ticks.csv'), 'w', newline='')
    w = csv.DictWriter(f, ['t', 'demand_mbps'] + [f'u_{cid}' for cid in clusters] + run.SHARES +
                       ['max_util', 'n_over', 'flaps', 'failures', 'queries', 'over_mbps', 'late'])
    w.writeheader()
    try:
        for _ in range(100):
            try:
                run.post_mbps(scn['control_url'], zero)
                break
            except OSError:
                time.sleep(0.1)
        else:
            sys.exit(f"fixtures not reachable at {scn['control_url']}")
        time.sleep(a.warmup)
        start = time.monotonic()
        for k in range(ticks):
            t = k * a.tick
            demand = level_at(schedule, t) * total_cap
            due = [cl for cl in clients if cl['expiry'] <= t + 1e-9]
            answers = run.resolve(sock, server, scn['qname'], [cl['subnet'] for cl in due], timeout, qid)
            flaps = failures = 0
            for cl in due:
                ans = answers[cl['subnet']]
                c = by_ip.get(ans[0]) if ans else None
                if c is None:
                    failures += 1
                    cl.update(cluster=None, expiry=t + a.tick)
                    continue
                life = min(ans[1], a.ttl_cap)
                if cl['last'] is None:
                    life *= rnd.random()
                elif cl['last'] != c['id']:
                    flaps += 1
                cl.update(cluster=c['id'], last=c['id'], expiry=t + life)
            load = dict.fromkeys(clusters, 0.0)
            home = xcar = xreg = lost = 0.0
            for cl in clients:
                d = demand * cl['weight']
                if cl['cluster'] is None:
                    lost += d
                    continue
                c = clusters[cl['cluster']]
                load[c['id']] += d
                home += d * (c['region'] == cl['region'] and c['carrier'] == cl['carrier'])
                xcar += d * (c['carrier'] != cl['carrier'])
                xreg += d * (c['region'] != cl['region'])
            run.post_mbps(scn['control_url'], {s['id']: load[c['id']] / len(c['servers'])
                                               for c in clusters.values() for s in c['servers']})
            util = {cid: load[cid] / c['capacity_mbps'] for cid, c in clusters.items()}
            row = {'t': round(t, 3), 'demand_mbps': round(demand, 1)}
            row.update({f'u_{cid}': round(u, 4) for cid, u in util.items()})
            row.update(home_share=home / demand, xcarrier_share=xcar / demand,
                       xregion_share=xreg / demand, lost_share=lost / demand,
                       max_util=max(util.values()), n_over=sum(u > 1 for u in util.values()),
                       flaps=flaps, failures=failures, queries=len(due),
                       over_mbps=sum(load[cid] for cid, u in util.items() if u > 1))
            wait = start + (k + 1) * a.tick - time.monotonic()
            row['late'] = int(wait < 0)
            rows.append(row)
            w.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})
            f.flush()
            if wait > 0:
                time.sleep(wait)
    finally:
        if fx:
            fx.terminate()
            try:
                fx.wait(5)
            except subprocess.TimeoutExpired:
                fx.kill()
        sock.close()
        f.close()
    s, md = run.summarize(rows, a, scn)
    with open(os.path.join(out, 'summary.json'), 'w') as f:
        json.dump(s, f, indent=1)
    with open(os.path.join(out, 'summary.md'), 'w') as f:
        f.write(md)
    print(md)


if __name__ == '__main__':
    main()
