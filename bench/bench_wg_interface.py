"""Wall time of wg_interface through `ansible`: create an interface with 50 peers, re-run it unchanged.

Runs inside a throw-away namespace host of the test rig (tests/lib/rig.py), userspace backend
(wireguard-go). Each round: remove the interface, create it (timed), re-run unchanged (timed).
Prints a markdown table of the medians and writes JSON to --out.

    sudo .venv/bin/python bench/bench_wg_interface.py [--runs 5] [--peers 50] [--out FILE]
"""

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
sys.path.insert(0, os.path.join(REPO, "collections"))

from rig import Lab  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys  # noqa: E402


def peers(count):
    out = []
    for i in range(count):
        pub = keys.public_key(keys.generate_private_key())
        out.append({"public_key": pub, "allowed_ips": ["10.7.%d.%d/32" % (1 + i // 250, 1 + i % 250)],
                    "endpoint": "192.0.2.%d:51820" % (10 + i), "persistent_keepalive": 25})
    return out


def timed(host, args):
    start = time.monotonic()
    res = host.ansible("wgsp.service_proxy.wg_interface", args)
    elapsed = time.monotonic() - start
    if res.returncode != 0:
        raise SystemExit("ansible failed:\n%s\n%s" % (res.stdout, res.stderr))
    return elapsed, ("CHANGED" in res.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--peers", type=int, default=50)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "wg_interface.json"))
    opts = parser.parse_args()

    args = {"name": "wg0", "addresses": ["10.7.0.1/16"], "listen_port": 51820, "peers": peers(opts.peers)}
    create, unchanged = [], []
    lab = Lab()
    try:
        host = lab.host("bench")
        host.ansible("wgsp.service_proxy.wg_interface", {"name": "wg0", "state": "absent"})
        for _run in range(opts.runs):
            t, changed = timed(host, args)
            assert changed, "create run reported no change"
            create.append(t)
            t, changed = timed(host, args)
            assert not changed, "unchanged re-run reported a change"
            unchanged.append(t)
            host.ansible("wgsp.service_proxy.wg_interface", {"name": "wg0", "state": "absent"}, check=True)
    finally:
        lab.close()

    result = {
        "benchmark": "wg_interface via ansible (userspace backend, wireguard-go, netns host)",
        "peers": opts.peers, "runs": opts.runs,
        "create_seconds": create, "unchanged_seconds": unchanged,
        "create_median_s": statistics.median(create), "unchanged_median_s": statistics.median(unchanged),
        "python": sys.version.split()[0], "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    os.makedirs(os.path.dirname(os.path.abspath(opts.out)), exist_ok=True)
    with open(opts.out, "w") as handle:
        json.dump(result, handle, indent=2)
    print("| wg_interface, %d peers (ansible, median of %d) | wall time |" % (opts.peers, opts.runs))
    print("| --- | --- |")
    print("| create | %.2f s |" % result["create_median_s"])
    print("| re-run unchanged | %.2f s |" % result["unchanged_median_s"])
    print("\nJSON written to %s" % opts.out)


if __name__ == "__main__":
    main()
