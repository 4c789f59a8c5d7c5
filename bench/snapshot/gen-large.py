#!/usr/bin/env python3
"""Generate a large steerdns configuration for the snapshot benchmark:
100k names (over 10 zones; a mix of A/AAAA/TXT/CNAME/MX records, wildcards,
delegations and 1,000 steered names), 10k CIDR overrides, 1,000 clusters of
2 servers in 50 regions and 3 carriers.

    gen-large.py OUTDIR [--names 100000] [--nets 10000] [--clusters 1000]
"""
import argparse
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--names", type=int, default=100000)
    ap.add_argument("--nets", type=int, default=10000)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--zones", type=int, default=10)
    a = ap.parse_args()
    random.seed(1)
    os.makedirs(os.path.join(a.out, "zones"), exist_ok=True)
    carriers = ["telecom", "unicom", "mobile"]
    nregions = 50
    lines = ["server: {listen: [127.0.0.1], port: 0, workers: 1, max_zones: 100}",
             "health: {interval: 1s}",
             "regions:"]
    for r in range(nregions):
        lines.append(f"  r{r}: {{lat: {random.uniform(20, 45):.4f}, lon: {random.uniform(90, 125):.4f}, country: CN}}")
    lines.append("geo:")
    lines.append("  carriers:")
    for c in carriers:
        lines.append(f"    {c}: {{}}")
    lines.append("  nets:")
    for i in range(a.nets):
        net = f"10.{i // 256}.{i % 256}.0/24" if i < 65536 else f"11.{(i - 65536) // 256}.{i % 256}.0/24"
        lines.append(f"    \"{net}\": {{region: r{random.randrange(nregions)}, carrier: {random.choice(carriers)}}}")
    lines.append("clusters:")
    port = 20000
    for c in range(a.clusters):
        lines.append(f"  c{c}:")
        lines.append(f"    region: r{c % nregions}")
        lines.append(f"    carrier: {carriers[c % 3]}")
        lines.append(f"    entry: [198.{18 + c // 65536}.{(c // 256) % 256}.{c % 256}, \"2001:db8:{c:x}::1\"]")
        lines.append("    servers:")
        for s in range(2):
            lines.append(f"      s{s}: {{capacity: 10Gbit, check: {{kind: prometheus, url: \"http://127.0.0.1:{port}/metrics\"}}}}")
            port += 1
    lines.append("resolvers:")
    lines.append("  steer:")
    lines.append("    downloads: {mode: damped, ttl: 30s}")
    lines.append("zones:")
    lines.append("  - include: zones/*.yaml")
    with open(os.path.join(a.out, "steerdns.yaml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    per_zone = a.names // a.zones
    for z in range(a.zones):
        zl = [f"origin: zone{z}.example", "ttl: 3600", "soa: \"ns1 hostmaster 1 3600 600 604800 300\"",
              "ns: [ns1, ns2]", "records:", "  ns1: \"A 192.0.2.1\"", "  ns2: \"A 192.0.2.2\"",
              "  \"*.wild\": \"A 192.0.2.99\"", "  sub: [\"NS ns.sub\"]", "  ns.sub: \"A 192.0.2.53\""]
        for i in range(per_zone - 6):
            kind = i % 10
            n = f"h{i}"
            if kind == 0:
                zl.append(f"  {n}: {{steer: downloads}}" if i % 100 == 0 else f"  {n}: \"CNAME h{i + 1}\"")
            elif kind in (1, 2, 3, 4, 5):
                zl.append(f"  {n}: [\"A 192.0.{i % 256}.{kind}\", \"AAAA 2001:db8::{i:x}\"]")
            elif kind == 6:
                zl.append(f"  {n}: \"TXT v=example-{i}\"")
            elif kind == 7:
                zl.append(f"  {n}: [\"MX 10 h{i + 1}\", \"A 192.0.2.{i % 256}\"]")
            else:
                zl.append(f"  {n}.a.b: \"A 192.0.2.{i % 256}\"")
        with open(os.path.join(a.out, "zones", f"zone{z}.yaml"), "w") as f:
            f.write("\n".join(zl) + "\n")


if __name__ == "__main__":
    main()
