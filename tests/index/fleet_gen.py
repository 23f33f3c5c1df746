#!/usr/bin/python3
"""fleet_gen.py — compute nodes as hvn-pub reads them (JSON lines).

    fleet_gen.py --nodes N [--seed S] [--updates R] [--duration S] [--script-host]

Prints N nodes spread over racks and hypervisor types with varied
utilisation, then, with --updates, changes R nodes a second (vcpus_used,
memory_mb_used, running_vms) for --duration seconds. --script-host names
one node's host '<script>…</script>' (a hostile name the page must show as
text). Used by the page's browser test, its screenshot and its benchmark.
"""
import argparse
import json
import random
import sys
import time
import uuid as uuidlib

TYPES = [("QEMU", 7002000), ("QEMU", 8002000), ("ironic", 1), ("VMware vCenter Server", 8000000)]
PREFIXES = ["rack1-cmp", "rack2-cmp", "rack3-cmp", "gpu", "edge-lon", "edge-fra"]
SCRIPT_HOST = "<script>window.__pwned=1</script>"


def node(rng, i, script_host=False):
    """Returns node i as a dict."""
    kind, version = TYPES[i % 7 % len(TYPES)] if i % 7 < 4 else TYPES[0]
    host = "%s-%03d" % (PREFIXES[i % len(PREFIXES)], i)
    if script_host:
        host = SCRIPT_HOST
    vcpus = rng.choice([32, 48, 64, 96, 128])
    memory = rng.choice([131072, 262144, 524288])
    disk = rng.choice([900, 1800, 3600])
    load = rng.random() ** 0.7
    vcpus_used = int(vcpus * load)
    memory_used = int(memory * min(1.0, load * rng.uniform(0.6, 1.3)))
    disk_used = int(disk * rng.uniform(0.05, 0.95))
    return {
        "id": i + 1,
        "uuid": str(uuidlib.UUID(int=rng.getrandbits(128), version=4)),
        "host": host, "hypervisor_hostname": host + ".example.org",
        "hypervisor_type": kind, "hypervisor_version": version,
        "vcpus": vcpus, "vcpus_used": vcpus_used,
        "memory_mb": memory, "memory_mb_used": memory_used, "free_ram_mb": memory - memory_used,
        "local_gb": disk, "local_gb_used": disk_used, "free_disk_gb": disk - disk_used,
        "disk_available_least": disk - disk_used, "current_workload": 0,
        "running_vms": vcpus_used // 2, "host_ip": "192.0.2.%d" % (i % 250 + 1),
    }


def change(rng, n):
    """Returns nothing; gives n a new load."""
    n["vcpus_used"] = rng.randint(0, n["vcpus"])
    n["memory_mb_used"] = rng.randint(0, n["memory_mb"])
    n["free_ram_mb"] = n["memory_mb"] - n["memory_mb_used"]
    n["running_vms"] = n["vcpus_used"] // 2


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--nodes", type=int, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--updates", type=int, default=0, help="changes a second after the fleet")
    p.add_argument("--duration", type=float, default=0)
    p.add_argument("--script-host", action="store_true")
    a = p.parse_args()
    rng = random.Random(a.seed)
    fleet = [node(rng, i, a.script_host and i == 1) for i in range(a.nodes)]
    out = sys.stdout
    for n in fleet:
        out.write(json.dumps(n) + "\n")
    out.flush()
    if not a.updates:
        return
    start = time.monotonic()
    sent = 0
    while time.monotonic() - start < a.duration:
        due = int((time.monotonic() - start) * a.updates)
        while sent < due:
            n = fleet[rng.randrange(len(fleet))]
            change(rng, n)
            out.write(json.dumps(n) + "\n")
            sent += 1
        out.flush()
        time.sleep(0.01)


if __name__ == "__main__":
    main()
