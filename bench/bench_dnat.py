"""Control-plane benchmark of wg_dnat (issue 4).

Inside a throw-away namespace host: apply a set of N published ports (N = 10, 100, 1000), then
re-apply it unchanged, for each backend, timing the module's wall time (direct module execution,
the way Ansible runs it on the host: a fresh Python process). In the same run, the baseline a user
would otherwise write: an ansible-playbook with one ``ansible.builtin.iptables`` task per rule
(DNAT in nat PREROUTING), for N = 10 and 100. Medians of RUNS runs; results in
bench/results/dnat.md and dnat.json.

usage: .venv/bin/python bench/bench_dnat.py [--runs 3] [--quick]
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from rig import PYTHON, Lab  # noqa: E402

SIZES = (10, 100, 1000)
BASELINE_SIZES = (10, 100)


def ruleset_args(n, backend):
    return {"name": "bench", "backend": backend, "in_interface": "eth1", "out_interface": "wg0",
            "masquerade": True,
            "rules": [{"port": 10000 + i, "to_address": "10.7.0.2"} for i in range(n)]}


def timed_module(host, args):
    start = time.perf_counter()
    result = host.module("wg_dnat", args)
    elapsed = time.perf_counter() - start
    if result.get("failed"):
        raise RuntimeError(result.get("msg"))
    return elapsed, result


def bench_module(host, backend, n, runs):
    applies, reapplies = [], []
    for _run in range(runs):
        host.module("wg_dnat", {"name": "bench", "state": "absent", "backend": backend})
        elapsed, result = timed_module(host, ruleset_args(n, backend))
        assert result["changed"], result
        applies.append(elapsed)
        elapsed, result = timed_module(host, ruleset_args(n, backend))
        assert result["changed"] is False and not result["applied"], result
        reapplies.append(elapsed)
    host.module("wg_dnat", {"name": "bench", "state": "absent", "backend": backend})
    return applies, reapplies


PLAY_HEAD = "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
TASK = ("    - ansible.builtin.iptables:\n        table: nat\n        chain: PREROUTING\n        in_interface: eth1\n"
        "        protocol: tcp\n        destination_port: '{port}'\n        jump: DNAT\n"
        "        to_destination: '10.7.0.2:{port}'\n        comment: bench\n")


def bench_baseline(lab, host, n, runs):
    path = os.path.join(lab.tmpdir, "baseline-%d.yml" % n)
    with open(path, "w") as handle:
        handle.write(PLAY_HEAD + "".join(TASK.format(port=10000 + i) for i in range(n)))
    os.chmod(path, 0o644)
    env = {"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": lab.tmpdir,
           "ANSIBLE_REMOTE_TEMP": lab.tmpdir, "ANSIBLE_NOCOLOR": "1"}
    argv = [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-c", "local", "-i", "localhost,",
            "-e", "ansible_python_interpreter=%s" % PYTHON, path]
    applies, reapplies = [], []
    for _run in range(runs):
        host.run("iptables -t nat -F PREROUTING")
        for bucket in (applies, reapplies):
            start = time.perf_counter()
            proc = host.run(["env", "-C", REPO, *argv], check=False, timeout=1800, env=env)
            bucket.append(time.perf_counter() - start)
            if proc.returncode != 0:
                raise RuntimeError(proc.stdout[-2000:] + proc.stderr[-2000:])
    host.run("iptables -t nat -F PREROUTING")
    return applies, reapplies


def machine(host):
    def out(cmd):
        return host.run(cmd, check=False).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?"),
        "kernel": platform.release(),
        "iptables": out("iptables --version"),
        "nft": out("nft --version"),
        "python": out([PYTHON, "--version"]),
        "ansible_core": out([PYTHON, "-c", "import ansible; print(ansible.__version__)"]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def med(values):
    return round(statistics.median(values), 3)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="skip the (slow) ansible.builtin.iptables baseline")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    opts = parser.parse_args()
    lab = Lab()
    try:
        host = lab.host("bench")
        lab.link(host, "eth1", ["203.0.113.1/24"], lab.host("public"), "eth0", ["203.0.113.2/24"])
        data = {"machine": machine(host), "runs": opts.runs, "module": [], "baseline": []}
        for backend in ("iptables", "nftables"):
            for n in SIZES:
                applies, reapplies = bench_module(host, backend, n, opts.runs)
                row = {"backend": backend, "n": n, "apply_s": med(applies), "reapply_s": med(reapplies),
                       "apply_all": [round(x, 3) for x in applies], "reapply_all": [round(x, 3) for x in reapplies]}
                data["module"].append(row)
                print("wg_dnat %-9s N=%-5d apply %.3fs  unchanged %.3fs" % (backend, n, row["apply_s"], row["reapply_s"]),
                      flush=True)
        if not opts.quick:
            for n in BASELINE_SIZES:
                applies, reapplies = bench_baseline(lab, host, n, opts.runs)
                ours = [r for r in data["module"] if r["backend"] == "iptables" and r["n"] == n][0]
                row = {"n": n, "apply_s": med(applies), "reapply_s": med(reapplies),
                       "apply_all": [round(x, 3) for x in applies], "reapply_all": [round(x, 3) for x in reapplies],
                       "ratio_apply": round(med(applies) / ours["apply_s"], 1),
                       "ratio_reapply": round(med(reapplies) / ours["reapply_s"], 1)}
                data["baseline"].append(row)
                print("baseline  N=%-5d apply %.3fs  unchanged %.3fs  (x%.1f / x%.1f)" % (
                    n, row["apply_s"], row["reapply_s"], row["ratio_apply"], row["ratio_reapply"]), flush=True)
    finally:
        lab.close()
    write(data, opts.out)


def write(data, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "dnat.json"), "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    m = data["machine"]
    lines = [
        "# wg_dnat control-plane benchmark",
        "",
        "Command: `.venv/bin/python bench/bench_dnat.py` (medians of %d runs; module wall time = a fresh" % data["runs"],
        "Python process running the module inside a namespace host, as Ansible runs it on the target).",
        "",
        "Machine: %s CPUs (%s), kernel %s, %s, %s, %s, ansible-core %s; %s." % (
            m["nproc"], m["cpu"], m["kernel"], m["iptables"], m["nft"], m["python"], m["ansible_core"], m["date"]),
        "",
        "Each published port is one rule `{port: P, to_address: 10.7.0.2}` with in_interface eth1,",
        "out_interface wg0, masquerade: 4 iptables rules / 4 nft rules per port (DNAT, forward accept,",
        "reply accept, MASQUERADE).",
        "",
        "| backend | N ports | apply (s) | unchanged re-run (s) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in data["module"]:
        lines.append("| %s | %d | %.3f | %.3f |" % (row["backend"], row["n"], row["apply_s"], row["reapply_s"]))
    if data["baseline"]:
        lines += [
            "",
            "Baseline: `ansible-playbook` with one `ansible.builtin.iptables` task per port (DNAT only, nat",
            "PREROUTING), whole playbook wall time (it includes ~2 s of ansible-playbook start-up that the",
            "module figures do not); ratio = baseline / wg_dnat (iptables backend, same N).",
            "",
            "| N ports | baseline apply (s) | baseline re-run (s) | ratio apply | ratio re-run |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in data["baseline"]:
            lines.append("| %d | %.3f | %.3f | %.1fx | %.1fx |" % (
                row["n"], row["apply_s"], row["reapply_s"], row["ratio_apply"], row["ratio_reapply"]))
    lines += ["", "Targets (issue 4): 1000 ports < 1 s, unchanged re-run < 0.3 s, >= 50x the per-rule baseline at N = 100.", ""]
    with open(os.path.join(out_dir, "dnat.md"), "w") as handle:
        handle.write("\n".join(lines))


if __name__ == "__main__":
    main()
