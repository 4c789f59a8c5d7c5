#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets (run once; the files are
committed).  Queries cover each RFC edge case the server handles."""
import os, struct, random

HERE = os.path.dirname(os.path.abspath(__file__))

def name(n):
    out = b""
    for label in n.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"

TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "MX": 15, "TXT": 16, "AAAA": 28, "DS": 43,
         "ANY": 255, "AXFR": 252, "OPT": 41}

def opt(udp=1232, version=0, do=False, options=b""):
    return b"\0" + struct.pack(">HHBBHH", 41, udp, 0, version, 0x8000 if do else 0, len(options)) + options

def ecs(family, source, addr, scope=0):
    data = struct.pack(">HBB", family, source, scope) + addr
    return struct.pack(">HH", 8, len(data)) + data

def query(qname, qtype, flags=0x0000, edns=None, qd=1, ar=None):
    q = name(qname) + struct.pack(">HH", TYPES.get(qtype, qtype) if isinstance(qtype, str) else qtype, 1)
    arc = (1 if edns is not None else 0) if ar is None else ar
    hdr = struct.pack(">HHHHHH", random.randint(0, 65535), flags, qd, 0, 0, arc)
    return hdr + q + (edns or b"")

random.seed(7)
seeds = {
    "www-a": query("www.example.test", "A"),
    "www-aaaa-edns": query("www.example.test", "AAAA", edns=opt()),
    "nx": query("nope.example.test", "A", edns=opt()),
    "nodata": query("www.example.test", "MX"),
    "cname": query("chain.example.test", "A", edns=opt(do=True)),
    "loop": query("loop1.example.test", "A"),
    "wild": query("x.y.wild.example.test", "A"),
    "referral": query("host.child.example.test", "A", edns=opt()),
    "ds": query("child.example.test", "DS"),
    "ent": query("b.ent.example.test", "TXT"),
    "refused": query("example.org", "A"),
    "any": query("example.test", "ANY"),
    "axfr": query("example.test", "AXFR"),
    "big-noedns": query("big.example.test", "TXT"),
    "big-edns": query("big.example.test", "TXT", edns=opt(udp=4096)),
    "badvers": query("www.example.test", "A", edns=opt(version=1)),
    "ecs4": query("www.example.test", "A", edns=opt(options=ecs(1, 24, bytes([198, 18, 1])))),
    "ecs6": query("www.example.test", "AAAA", edns=opt(options=ecs(2, 56, bytes(7)))),
    "ecs0": query("www.example.test", "A", edns=opt(options=ecs(1, 0, b""))),
    "ecs-badfam": query("www.example.test", "A", edns=opt(options=ecs(3, 24, bytes(3)))),
    "ecs-hostbits": query("www.example.test", "A", edns=opt(options=ecs(1, 20, bytes([10, 1, 255])))),
    "ecs-long": query("www.example.test", "A", edns=opt(options=ecs(1, 33, bytes(5)))),
    "unknown-opt": query("www.example.test", "A", edns=opt(options=struct.pack(">HH", 65001, 2) + b"xy")),
    "notimp": query("www.example.test", "A", flags=0x2800),
    "qd0": query("www.example.test", "A", qd=0),
    "qd2": query("www.example.test", "A", qd=2),
    "case": query("WwW.ExAmPlE.TeSt", "A"),
    "two-opt": query("www.example.test", "A", edns=opt() + opt(), ar=2),
}
os.makedirs(os.path.join(HERE, "corpus", "query"), exist_ok=True)
for k, v in seeds.items():
    with open(os.path.join(HERE, "corpus", "query", k), "wb") as f:
        f.write(v)

# Config seeds: the example and small variants.
configs = {
    "minimal.yaml": "server: {port: 0}\nzones:\n  - origin: a.test\n    soa: \"ns1 h 1 1 1 1 1\"\n    ns: [ns1]\n    records: {ns1: \"A 192.0.2.1\", www: [\"A 192.0.2.2\", \"AAAA ::1\"]}\n",
    "errors.yaml": "server: {port: 99999, colour: x}\nzones:\n  - origin: a.test\n    records: {www: \"A 1.2.3.400\", c: [\"CNAME x\", \"A 1.1.1.1\"]}\n",
    "anchors.yaml": "a: &a [1, 2]\nb: *a\n",
}
os.makedirs(os.path.join(HERE, "corpus", "config"), exist_ok=True)
for k, v in configs.items():
    with open(os.path.join(HERE, "corpus", "config", k), "w") as f:
        f.write(v)
