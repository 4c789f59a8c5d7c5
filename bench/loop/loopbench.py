#!/usr/bin/env python3
"""Closed-loop comparison: steerdns (damped and literal) against the three
reference policies of ../shared/loop, on several scenarios and TTL caps, in
one markdown table (the harness's columns plus the TTL cap).

    loopbench.py --steerdns BUILD/steerdns [--scenarios small,flash,wide,surge]
                 [--caps 5,30] [--servers damped,literal,static,threshold,threshold-spread]
                 [--duration 120] [--jobs 2] [--out DIR] [--port-base 5600]

Each run: translate the scenario (scenario2config.py) and start `steerdns
serve` (or the harness's refserver.py), drive it with drive.py (run.py
itself unless the scenario has a demand schedule), stop the server by its
PID.  Runs of different scenarios go in parallel (--jobs, default 2: the
driver and the server share the cores; two runs of one scenario would share
its fixture ports, so they never overlap).  Results land in OUT/<run>/ and
the table in OUT/loop.md; OUT defaults to $LOOP_OUT or
${TMPDIR:-/tmp}/steerdns-loop, never inside the harness folder.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LOOP = os.environ.get('LOOP_DIR', os.path.join(HERE, '..', '..', '..', 'shared', 'loop'))
REFS = ['static', 'threshold', 'threshold-spread']
MODES = ['damped', 'literal']
HEADER = ('| scenario | policy | ttl-cap | home | other carrier | other region | max util median / max '
          '| clusters >100% max | first overload s | overloaded demand share | flaps (per query) '
          '| failures |')

procs = set()  # every process started here and not yet stopped
procs_lock = threading.Lock()


def start(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    with procs_lock:
        procs.add(p)
    return p


def stop(p, grace=5.0):
    """Stop one process we started, by its PID: SIGTERM, then SIGKILL."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    with procs_lock:
        procs.discard(p)


def scenario_path(name):
    if os.path.exists(name):
        return os.path.abspath(name)
    for d in (os.path.join(HERE, 'scenarios'), os.path.join(LOOP, 'scenarios')):
        p = os.path.join(d, name + '.json')
        if os.path.exists(p):
            return p
    sys.exit(f'loopbench: no scenario {name!r} (looked in bench/loop/scenarios and the harness)')


def wait_ready(p, log, deadline_s=10.0):
    """Wait for `steerdns ready port=N` on the server's stdout (a file)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if p.poll() is not None:
            return False
        with open(log) as f:
            if 'steerdns ready' in f.read():
                return True
        time.sleep(0.05)
    return False


def one_run(a, scn_path, scn, server, cap, port, py):
    name = f'{scn}-{server}-cap{cap:g}'
    out = os.path.join(a.out, name)
    os.makedirs(out, exist_ok=True)
    srv = None
    try:
        if server in MODES:
            cfg = os.path.join(out, 'steerdns.yaml')
            with open(cfg, 'w') as f:
                subprocess.run([py, os.path.join(HERE, 'scenario2config.py'), scn_path,
                                '--mode', server, '--port', str(port),
                                '--control', os.path.join(out, 'control.sock')] + a.set_args,
                               check=True, stdout=f)
            log = os.path.join(out, 'steerdns.out')
            with open(log, 'w') as lo, open(os.path.join(out, 'steerdns.err'), 'w') as le:
                srv = start([a.steerdns, 'serve', '-c', cfg], stdout=lo, stderr=le)
            if not wait_ready(srv, log):
                raise RuntimeError(f'{name}: steerdns did not become ready (see {out}/steerdns.err)')
        else:
            srv = start([py, os.path.join(LOOP, 'refserver.py'), scn_path, '--policy', server,
                         '--port', str(port), '--lifetime', str(a.duration + 90)],
                        stdout=subprocess.DEVNULL)
            time.sleep(0.5)  # it binds before it prints; the driver's warmup covers the rest
        drv = start([py, os.path.join(HERE, 'drive.py'), '127.0.0.1', str(port), scn_path,
                     '--name', name, '--duration', str(a.duration), '--tick', '1',
                     '--ttl-cap', str(cap), '--out', a.out], stdout=subprocess.DEVNULL)
        rc = drv.wait()
        with procs_lock:
            procs.discard(drv)
        if rc != 0:
            raise RuntimeError(f'{name}: driver exit status {rc}')
    finally:
        if srv is not None:
            stop(srv)
    with open(os.path.join(out, 'summary.json')) as f:
        return json.load(f)


def row(scn, server, cap, s):
    r, mx, med = s['run'], s['max'], s['median']
    first = 'never' if s['first_overload_s'] is None else f"{s['first_overload_s']:g}"
    q = max(1, s['total_queries'])
    return (f"| {scn} | {'steerdns ' + server if server in MODES else server} | {cap:g} | "
            f"{r['home_share']:.3f} | {r['xcarrier_share']:.3f} | {r['xregion_share']:.3f} | "
            f"{med['max_util']:.2f} / {mx['max_util']:.2f} | {mx['n_over']} | {first} | "
            f"{s['overloaded_share']:.3f} | {s['total_flaps']} ({s['total_flaps'] / q:.3f}) | "
            f"{s['total_failures']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--steerdns', required=True, help='the steerdns binary')
    ap.add_argument('--scenarios', default='small,flash,wide,surge')
    ap.add_argument('--caps', default='5,30')
    ap.add_argument('--servers', default=','.join(MODES + REFS))
    ap.add_argument('--duration', type=float, default=120)
    ap.add_argument('--jobs', type=int, default=2)
    ap.add_argument('--port-base', type=int, default=5600)
    ap.add_argument('--set', action='append', default=[], help='extra steer setting key=value')
    ap.add_argument('--python', default=sys.executable, help='an interpreter that can import dns')
    ap.add_argument('--out', default=os.environ.get('LOOP_OUT') or
                    os.path.join(os.environ.get('TMPDIR', '/tmp'), 'steerdns-loop'))
    a = ap.parse_args()
    a.out = os.path.abspath(a.out)
    if os.path.realpath(a.out).startswith(os.path.realpath(LOOP)):
        sys.exit('loopbench: results must go outside the harness folder (--out)')
    a.set_args = [x for kv in a.set for x in ('--set', kv)]
    a.steerdns = os.path.abspath(a.steerdns)
    os.makedirs(a.out, exist_ok=True)
    scns = [(n, scenario_path(n)) for n in a.scenarios.split(',') if n]
    caps = [float(c) for c in a.caps.split(',') if c]
    servers = [s for s in a.servers.split(',') if s]
    for s in servers:
        if s not in MODES + REFS:
            sys.exit(f'loopbench: unknown server {s!r} (known: {", ".join(MODES + REFS)})')
    jobs = [(scn, path, srv, cap) for cap in caps for scn, path in scns for srv in servers]
    results = {}
    busy = set()  # scenarios running now (fixture ports)
    cond = threading.Condition()
    slots = threading.Semaphore(max(1, a.jobs))
    errors = []

    def worker(k, scn, path, srv, cap):
        try:
            s = one_run(a, path, os.path.splitext(os.path.basename(path))[0], srv, cap,
                        a.port_base + k, a.python)
            results[(scn, srv, cap)] = s
            line = row(scn, srv, cap, s)
            if s.get('late_ticks'):
                line += f' <!-- {s["late_ticks"]} late ticks -->'
            print('loopbench: ' + line, file=sys.stderr, flush=True)
        except Exception as e:  # reported at the end; the other runs go on
            errors.append(str(e))
            print(f'loopbench: {e}', file=sys.stderr, flush=True)
        finally:
            with cond:
                busy.discard(path)
                cond.notify_all()
            slots.release()

    def on_signal(signum, frame):
        with procs_lock:
            for p in list(procs):
                if p.poll() is None:
                    p.terminate()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f'loopbench: {len(jobs)} runs of {a.duration:g} s, {a.jobs} at a time; results in {a.out}',
          file=sys.stderr, flush=True)
    threads = []
    pending = list(enumerate(jobs))
    while pending:
        slots.acquire()
        with cond:
            while True:
                pick = next((j for j in pending if j[1][1] not in busy), None)
                if pick is not None:
                    break
                cond.wait()
            pending.remove(pick)
            k, (scn, path, srv, cap) = pick
            busy.add(path)
        t = threading.Thread(target=worker, args=(k, scn, path, srv, cap))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    lines = [HEADER, '|' + '---|' * 12]
    order = {s: i for i, s in enumerate(MODES + REFS)}
    late = 0
    for cap in caps:
        for scn, _ in scns:
            for srv in sorted(servers, key=order.get):
                if (scn, srv, cap) in results:
                    s = results[(scn, srv, cap)]
                    late += s.get('late_ticks', 0)
                    lines.append(row(scn, srv, cap, s) +
                                 (f' <!-- {s["late_ticks"]} late ticks -->' if s.get('late_ticks') else ''))
    table = '\n'.join(lines) + '\n'
    if late:
        print(f'loopbench: {late} late ticks in all (the machine was too busy; see the rows marked)',
              file=sys.stderr)
    with open(os.path.join(a.out, 'loop.md'), 'w') as f:
        f.write(f'duration {a.duration:g} s, tick 1 s, poll interval 1 s, threshold 90%; '
                f'ttl-cap {", ".join(f"{c:g}" for c in caps)} s\n\n' + table)
    print(table, end='')
    if errors:
        print('loopbench: failed runs:\n  ' + '\n  '.join(errors), file=sys.stderr)
        sys.exit(1)


if __name__ == '__main__':
    main()
