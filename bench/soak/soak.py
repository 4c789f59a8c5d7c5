#!/usr/bin/env python3
"""soak.py: the soak test of issue 7 (not part of the default test run).

Runs the real steerdns for --duration seconds (600) on loopback under mixed
UDP and TCP load while it is reloaded with SIGHUP every 5 s, alternating a
valid and an invalid configuration, and while its health endpoints (one
fixture HTTP server, httpfix-server) flap between idle, busy, garbage, slow
(timeouts) and HTTP errors.  At the end it reports queries sent, answered
and lost (must be 0: the load is paced well below saturation, and rate
limiting is off), truncated, the server's RSS at start and end, how many
reloads succeeded and failed, and whether the server crashed (it must stop
cleanly with status 0 on SIGTERM).  Exit status 0 only when nothing was
lost, nothing crashed and RSS grew less than --rss-bound MiB.

    soak.py --build build [--duration 600] [--qps 3000] [--tcp-clients 4]

Under AddressSanitizer, freed memory is held in a quarantine (256 MiB by
default) and counts in RSS: run with ASAN_OPTIONS=quarantine_size_mb=0 for
the RSS bound to mean what it says.
"""
import argparse
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

NAMES = [("www.soak.test.", 1), ("app.soak.test.", 1), ("app.soak.test.", 28), ("nx%d.soak.test.", 1),
         ("soak.test.", 6), ("alias.soak.test.", 1), ("x.wild.soak.test.", 16)]


def qname_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def build_query(qid, name, qtype, ecs=None):
    h = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 1)
    opt_data = b""
    if ecs:
        a = socket.inet_aton(ecs)
        opt_data = struct.pack(">HHHBB", 8, 7, 1, 24, 0) + a[:3]
    opt = b"\0" + struct.pack(">HHIH", 41, 1232, 0, len(opt_data)) + opt_data
    return h + qname_wire(name) + struct.pack(">HH", qtype, 1) + opt


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.sent = self.answered = self.lost = self.truncated = self.bad = 0

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


def pick():
    name, t = random.choice(NAMES)
    if "%d" in name:
        name = name % random.randrange(1000)
    return name, t


def udp_client(port, qps, stop, st, timeout):
    """Paced sender with a window: every query must be answered within
    `timeout` seconds or it counts as lost."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    pending = {}
    qid = random.randrange(65536)
    interval = 1.0 / qps
    nxt = time.monotonic()
    while not stop.is_set() or pending:
        now = time.monotonic()
        if not stop.is_set() and now >= nxt:
            qid = (qid + 1) & 0xFFFF
            if qid not in pending:
                name, t = pick()
                ecs = "198.18.%d.0" % random.randrange(4) if random.random() < 0.5 else None
                s.send(build_query(qid, name, t, ecs))
                pending[qid] = now
                st.add(sent=1)
            nxt += interval
            if nxt < now - 1:
                nxt = now
            continue
        try:
            while True:
                m = s.recv(65535)
                if len(m) < 12:
                    continue
                rid = struct.unpack(">H", m[:2])[0]
                if rid in pending:
                    del pending[rid]
                    st.add(answered=1, truncated=1 if m[2] & 0x02 else 0)
        except BlockingIOError:
            pass
        for k, t0 in list(pending.items()):
            if now - t0 > timeout:
                del pending[k]
                st.add(lost=1)
        time.sleep(min(interval, 0.0005))
    s.close()


def tcp_client(port, stop, st, timeout):
    """Pipelined queries over a persistent connection; reconnects when the
    server closes it (idle timeout)."""
    while not stop.is_set():
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except OSError:
            st.add(bad=1)
            time.sleep(0.1)
            continue
        try:
            while not stop.is_set():
                batch = []
                for i in range(10):
                    name, t = pick()
                    q = build_query(random.randrange(65536), name, t)
                    batch.append(struct.pack(">H", len(q)) + q)
                c.sendall(b"".join(batch))
                st.add(sent=10)
                got = 0
                buf = b""
                deadline = time.monotonic() + timeout
                while got < 10 and time.monotonic() < deadline:
                    chunk = c.recv(65535)
                    if not chunk:
                        break
                    buf += chunk
                    while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
                        n = struct.unpack(">H", buf[:2])[0]
                        buf = buf[2 + n:]
                        got += 1
                st.add(answered=got, lost=10 - got)
                time.sleep(0.01)
        except OSError:
            pass
        finally:
            c.close()


def rss_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def config(fixture_port, control, valid):
    if not valid:
        return "server: [this is not\n  valid yaml\n"
    clusters = []
    for i in range(4):
        clusters.append(f"""  c{i}:
    region: r{i % 2}
    carrier: t
    entry: [203.0.113.{i + 1}, "2001:db8::{i + 1}"]
    servers:
      s{i}: {{capacity: 1Gbit, check: {{kind: prometheus, url: "http://127.0.0.1:{fixture_port}/m{i}", interval: 200ms, timeout: 150ms}}}}""")
    return f"""server:
  listen: [127.0.0.1]
  port: 0
  workers: 2
  control: {control}
  tcp: {{max_connections: 64, idle_timeout: 2s}}
health: {{interval: 200ms, threshold: 90%}}
regions:
  r0: {{lat: 39.9, lon: 116.4}}
  r1: {{lat: 23.1, lon: 113.3}}
geo:
  carriers: {{t: {{}}}}
  nets:
    "198.18.0.0/23": {{region: r0, carrier: t}}
    "198.18.2.0/23": {{region: r1, carrier: t}}
clusters:
{chr(10).join(clusters)}
resolvers:
  steer:
    dl: {{mode: damped, ttl: 5s}}
zones:
  - origin: soak.test
    soa: "ns1 hostmaster {int(time.time()) % 100000} 3600 600 604800 60"
    ns: [ns1]
    records:
      ns1: "A 192.0.2.53"
      www: ["A 192.0.2.80", "AAAA 2001:db8::80"]
      alias: "CNAME www"
      "*.wild": "TXT wild"
      app: {{steer: dl}}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--binary", help="steerdns binary (default BUILD/steerdns)")
    ap.add_argument("--duration", type=int, default=600)
    ap.add_argument("--qps", type=int, default=3000, help="UDP queries per second (over 2 clients)")
    ap.add_argument("--tcp-clients", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--rss-bound", type=float, default=32.0, help="MiB of RSS growth allowed")
    a = ap.parse_args()
    binary = a.binary or os.path.join(a.build, "steerdns")
    fixture_bin = os.path.join(a.build, "tests", "fixtures", "httpfix-server")
    tmp = tempfile.mkdtemp(prefix="steerdns-soak-")
    fx = subprocess.Popen([fixture_bin], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    fport = int(fx.stdout.readline().split()[2])

    def fcmd(line):
        fx.stdin.write(line + "\n")
        fx.stdin.flush()
        fx.stdout.readline()

    for i in range(4):
        fcmd(f"route /m{i} 200 - node_network_transmit_bytes_total{{device=\"eth0\"}} {{counter}}\\n")
        fcmd(f"rate /m{i} 10000000")
    cfg = os.path.join(tmp, "steerdns.yaml")
    control = os.path.join(tmp, "control.sock")
    open(cfg, "w").write(config(fport, control, True))
    log = open(os.path.join(tmp, "server.log"), "w")
    srv = subprocess.Popen([binary, "serve", "-c", cfg], stdout=subprocess.PIPE, stderr=log, text=True)
    line = srv.stdout.readline()
    if "ready" not in line:
        print("steerdns did not start; log in", tmp)
        return 1
    port = int(line.split("port=")[1].split()[0])
    st = Stats()
    stop = threading.Event()
    threads = [threading.Thread(target=udp_client, args=(port, a.qps / 2, stop, st, a.timeout)) for _ in range(2)]
    threads += [threading.Thread(target=tcp_client, args=(port, stop, st, a.timeout)) for _ in range(a.tcp_clients)]
    for t in threads:
        t.start()
    time.sleep(3)
    rss0 = rss_kb(srv.pid)
    modes = ["idle", "busy", "garbage", "slow", "error", "idle"]
    t0 = time.monotonic()
    reloads = 0
    flips = 0
    next_reload = t0 + 5
    next_flip = t0 + 1
    rss_max = rss0
    while time.monotonic() - t0 < a.duration:
        now = time.monotonic()
        if srv.poll() is not None:
            break
        if now >= next_flip:
            for i in range(4):
                m = random.choice(modes)
                if m == "idle":
                    fcmd(f"route /m{i} 200 - node_network_transmit_bytes_total{{device=\"eth0\"}} {{counter}}\\n")
                    fcmd(f"rate /m{i} 10000000")
                elif m == "busy":
                    fcmd(f"route /m{i} 200 - node_network_transmit_bytes_total{{device=\"eth0\"}} {{counter}}\\n")
                    fcmd(f"rate /m{i} 120000000")
                elif m == "garbage":
                    fcmd(f"route /m{i} 200 text/html <html>not metrics</html>")
                elif m == "slow":
                    fcmd(f"delay /m{i} 1000")
                else:
                    fcmd(f"status /m{i} 503")
                if m != "slow":
                    fcmd(f"delay /m{i} 0")
            flips += 1
            next_flip = now + 1
        if now >= next_reload:
            reloads += 1
            open(cfg + ".tmp", "w").write(config(fport, control, reloads % 2 == 0))
            os.rename(cfg + ".tmp", cfg)
            srv.send_signal(signal.SIGHUP)
            next_reload = now + 5
        rss_max = max(rss_max, rss_kb(srv.pid))
        time.sleep(0.1)
    crashed = srv.poll() is not None
    stop.set()
    for t in threads:
        t.join()
    rss1 = rss_kb(srv.pid)
    status = None
    if not crashed:
        srv.send_signal(signal.SIGTERM)
        try:
            status = srv.wait(timeout=30)
        except subprocess.TimeoutExpired:
            srv.kill()
            status = "hung"
    fx.stdin.close()
    fx.wait(timeout=10)
    log.close()
    text = open(os.path.join(tmp, "server.log")).read()
    ok_reloads = text.count("info: reloaded ")
    bad_reloads = text.count("failed with")
    growth = (rss1 - rss0) / 1024.0
    print(f"duration: {a.duration} s, binary: {binary}")
    print(f"queries: sent {st.sent}, answered {st.answered}, lost {st.lost}, truncated {st.truncated}")
    print(f"reloads: {reloads} signalled, {ok_reloads} succeeded, {bad_reloads} refused as invalid")
    print(f"health flips: {flips}")
    print(f"RSS: start {rss0 / 1024:.1f} MiB, end {rss1 / 1024:.1f} MiB, max {rss_max / 1024:.1f} MiB (growth {growth:.1f} MiB, bound {a.rss_bound} MiB)")
    print(f"crashes: {1 if crashed or status not in (0,) else 0} (exit status after SIGTERM: {status if not crashed else 'crashed: ' + str(srv.returncode)})")
    print(f"log: {tmp}/server.log")
    good = st.lost == 0 and not crashed and status == 0 and growth < a.rss_bound and ok_reloads > 0
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
