"""wg_metrics on the namespace rig (seed topology, wireguard-go, iptables): installed through
``ansible`` (Ansible's own module payload, from which the writer zip is built), then the writer run as
its schedule would run it, and its file read with Prometheus' own parser. The numbers follow the real
tunnel, real traffic through the published port, a real drift and a broken state file.

Each namespace host has private /etc/wg-service-proxy and /var/lib/wgsp-service-proxy; the writer and
the textfile go under the latter, with ``scheduler: none`` (the namespace hosts share this machine's
/etc/systemd and /etc/cron.d, which a test must not touch; the schedules are tested in the unit layer
and on the VM lab, which has systemd)."""

import json

from prometheus_client.parser import text_string_to_metric_families

from test_wg_status_lab import STATES, lab_up, write_state
from topology import PROXY_PUBLIC, SVC, tcp_get

BASE = "/var/lib/wgsp-service-proxy"
ARGS = {"interface": "wg0", "scheduler": "none", "textfile_dir": BASE + "/textfile", "writer_dir": BASE + "/lib"}


def ansible(host, args, *extra):
    """``ansible localhost -m wgsp.service_proxy.wg_metrics`` in the host; returns (status word, result)."""
    proc = host.ansible("wgsp.service_proxy.wg_metrics", args, extra=extra)
    head, _sep, body = proc.stdout.partition(" => ")
    assert proc.returncode == 0 and body, proc.stdout + proc.stderr
    return head.split("|")[-1].strip(), json.loads(body[:body.rindex("}") + 1])


def read(host, path):
    text = host.run(["cat", path]).stdout
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k != "interface"))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    want = tuple(sorted(labels.items()))
    hits = [v for (n, ls), v in samples.items() if n == name and all(item in ls for item in want)]
    assert len(hits) == 1, (name, labels, sorted(k for k in samples if k[0] == name))
    return hits[0]


def test_metrics_follow_the_tunnel_the_traffic_and_the_drift(lab):
    topo = lab_up(lab)
    topo.svc.serve("tcp", SVC, 8080)
    proxy = topo.proxy

    word, checked = ansible(proxy, ARGS, "--check", "--diff")
    assert word == "CHANGED" and proxy.run(["ls", BASE]).stdout.split() == [], checked
    word, result = ansible(proxy, ARGS)
    assert word == "CHANGED" and result["scheduler"] == "none" and result["files"] == [BASE + "/lib/wgsp-metrics.pyz"]
    assert result["metrics_file"] == BASE + "/textfile/wgsp_wg0.prom"
    # the same payload builds the same writer: a second run changes and writes nothing
    word, again = ansible(proxy, ARGS)
    assert word == "SUCCESS" and again["changed"] is False, again

    samples = read(proxy, result["metrics_file"])
    assert value(samples, "wgsp_collect_success") == 1
    assert value(samples, "wgsp_status", status="connected") == 1
    assert value(samples, "wgsp_info", client_mode="proxy", backend="userspace") == 1
    assert value(samples, "wgsp_peer_last_handshake_timestamp_seconds", role="hub") > 0
    assert value(samples, "wgsp_rule_set_in_sync", rule_set="public", module="wg_dnat", backend="iptables") == 1
    before = value(samples, "wgsp_rule_packets_total", rule_set="public", action="dnat", protocol="tcp", port="80")
    rx_before = value(samples, "wgsp_peer_receive_bytes_total", role="hub")

    # a request through the published port: its packets are counted on the port's rule
    assert tcp_get(topo.public, PROXY_PUBLIC, 80)[0] == 0
    proxy.run(result["command"])
    samples = read(proxy, result["metrics_file"])
    assert value(samples, "wgsp_rule_packets_total", rule_set="public", action="dnat", protocol="tcp",
                 port="80") == before + 1  # the nat table sees a connection's first packet only
    assert value(samples, "wgsp_peer_receive_bytes_total", role="hub") > rx_before

    # a deleted rule is drift
    line = proxy.run("iptables -t nat -S WGSP-PUBLIC-PRE | grep -- '--dport 80'").stdout.strip()
    proxy.run("iptables -t nat " + line.replace("-A ", "-D ", 1))
    proxy.run(result["command"])
    assert value(read(proxy, result["metrics_file"]), "wgsp_rule_set_in_sync", rule_set="public") == 0

    # a state file the writer cannot read: the file says so, the writer exits 1 with the reason
    proxy.run("echo '{not json' > /etc/wg-service-proxy/wg0.json")
    failed = proxy.run(result["command"], check=False)
    assert failed.returncode == 1 and "wg0.json" in failed.stderr, failed.stderr
    samples = read(proxy, result["metrics_file"])
    assert value(samples, "wgsp_collect_success") == 0 and not any(k[0] == "wgsp_status" for k in samples)
    write_state(proxy, STATES["proxy"])

    word, removed = ansible(proxy, {"interface": "wg0", "state": "absent", "textfile_dir": BASE + "/textfile",
                                    "writer_dir": BASE + "/lib"})
    assert word == "CHANGED" and proxy.run("ls -A %s/lib %s/textfile" % (BASE, BASE)).stdout.split() == [
        BASE + "/lib:", BASE + "/textfile:"], removed


def test_the_hub_counts_its_clients(lab):
    topo = lab_up(lab)
    result = topo.hub.module("wg_metrics", ARGS)
    assert result["changed"] and not result.get("failed"), result
    samples = read(topo.hub, result["metrics_file"])
    assert value(samples, "wgsp_clients_connected") == 2
    assert value(samples, "wgsp_info", client_mode="server", backend="userspace") == 1
    peers = [k for k in samples if k[0] == "wgsp_peer_transmit_bytes_total"]
    assert len(peers) == 2 and all(("role", "client") in k[1] for k in peers)
