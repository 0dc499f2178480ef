"""The metrics textfile (wg_status's result in the Prometheus text format), read back with Prometheus'
own parser (prometheus_client), and the writer zip built from the collection's code.

Nothing of the host is touched except where a test says so: the writer's zip is run for real with
this Python (its own imports only), and the writer's ``main`` gets a fake IPRoute factory."""

import io
import os
import subprocess
import sys
import threading
import zipfile

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import bundle, metrics, writer

NOW = 1800000000.0
HUB_KEY = "aGVsbG8rd29ybGQ/Zm9vL2Jhcj0xMjM0NTY3ODkwMTI="  # '+', '/' and '=' in a label value
PEER_KEY = "Q" * 43 + "="

PROXY_RESULT = {
    "status": "connected", "interface": "wg0", "client_mode": "proxy", "backend": "kernel",
    "public_key": PEER_KEY, "up": True,
    "peers": [{"public_key": HUB_KEY, "role": "hub", "latest_handshake": 1799999990, "rx_bytes": 1234,
               "tx_bytes": 5678}],
    "rules": [
        {"name": "public", "module": "wg_dnat", "backend": "iptables", "in_sync": True, "containers": [],
         "counters": [
             {"rule": "ipv4 nat WGSP-PUBLIC-PRE: -A WGSP-PUBLIC-PRE -i eth1 -p tcp -m tcp --dport 80 -m comment "
                      "--comment \"wgsp:public\" -j DNAT --to-destination 10.7.0.2:80", "packets": 7, "bytes": 420},
             {"rule": "ipv4 nat WGSP-PUBLIC-PRE: -A WGSP-PUBLIC-PRE -i eth1 -p udp -m udp --dport 30000:30010 -m comment "
                      "--comment \"wgsp:public\" -j DNAT --to-destination 10.7.0.2", "packets": 3, "bytes": 99},
             {"rule": "ipv4 nat WGSP-PUBLIC-POST: -A WGSP-PUBLIC-POST -o wg0 -p tcp -m tcp --dport 80 -m conntrack "
                      "--ctstate DNAT -m comment --comment \"wgsp:public\" -j MASQUERADE", "packets": 7, "bytes": 420}]},
        {"name": "share", "module": "wg_dnat", "backend": "nftables", "in_sync": False,
         "containers": [{"container": "web", "stale": False}, {"container": "web", "stale": True},
                        {"container": 'odd"name\\x\n', "stale": False}],
         "counters": [
             {"rule": "inet wgsp_share prerouting: iifname \"wg0\" meta nfproto ipv4 tcp dport 8000-8010 counter "
                      "dnat ip to 172.17.0.2", "packets": 2, "bytes": 120},
             {"rule": "inet wgsp_share prerouting: iifname \"wg0\" meta nfproto ipv6 tcp dport 8000-8010 counter "
                      "dnat ip6 to [fd00::2]", "packets": 1, "bytes": 80},
             {"rule": "inet wgsp_share forward: ct status dnat ct direction reply counter accept comment \"wgsp:accept\"",
              "packets": 5, "bytes": 500}]},
    ],
    "probes": [{"name": "hub", "target": "10.7.0.1:22", "ok": True}, {"name": "svc", "target": "x", "ok": None}],
}


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams, name):
    return [(s.labels, s.value) for f in fams.values() for s in f.samples if s.name == name]


def test_a_proxy_result_reads_back_with_prometheus_parser():
    text = metrics.render("wg0", PROXY_RESULT, NOW, 0.25)
    fams = families(text)
    assert fams["wgsp_collect_success"].samples[0].value == 1
    assert fams["wgsp_collect_timestamp_seconds"].samples[0].value == NOW
    status = {s.labels["status"]: s.value for s in fams["wgsp_status"].samples}
    assert status == {"connected": 1, "handshake-stale": 0, "no-handshake": 0, "down": 0, "absent": 0}
    # counters are typed as such (the parser strips _total from the family name)
    assert fams["wgsp_peer_receive_bytes"].type == "counter"
    assert samples(fams, "wgsp_peer_receive_bytes_total") == [
        ({"interface": "wg0", "public_key": HUB_KEY, "role": "hub"}, 1234)]
    assert samples(fams, "wgsp_peer_last_handshake_timestamp_seconds")[0][1] == 1799999990
    assert samples(fams, "wgsp_info")[0][0]["public_key"] == PEER_KEY
    assert "wgsp_clients_connected" not in fams  # hub only


def test_packets_per_published_port_on_both_backends():
    fams = families(metrics.render("wg0", PROXY_RESULT, NOW, 0.1))
    got = {(s.labels["rule_set"], s.labels["chain"], s.labels["action"], s.labels["protocol"], s.labels["port"]): s.value
           for s in fams["wgsp_rule_packets"].samples if s.name == "wgsp_rule_packets_total"}
    assert got == {
        ("public", "WGSP-PUBLIC-PRE", "dnat", "tcp", "80"): 7,
        ("public", "WGSP-PUBLIC-PRE", "dnat", "udp", "30000-30010"): 3,  # iptables' a:b as a-b, like nft
        ("public", "WGSP-PUBLIC-POST", "masquerade", "tcp", "80"): 7,
        ("share", "prerouting", "dnat", "tcp", "8000-8010"): 3,  # the IPv4 and IPv6 rules of one port, summed
        ("share", "forward", "accept", "", ""): 5,  # the set's name in the comment is not read as a verdict
    }


@pytest.mark.parametrize("line", [
    'inet wgsp-dnat-public prerouting: meta nfproto ipv4 udp dport 30000-30003 counter dnat ip to 10.7.0.2:udp dport '
    'map { 30000 : 40000, 30001 : 40001, 30002 : 40002, 30003 : 40003 } comment "wgsp:public"',
    'ipv4 nat WGSP-PUBLIC-PRE: -A WGSP-PUBLIC-PRE -i eth1 -p udp -m udp --dport 30000:30003 -m comment --comment '
    '"wgsp:public" -j DNAT --to-destination 10.7.0.2:40000-40003/30000',
])
def test_a_remapped_range_is_counted_by_its_public_ports(line):
    assert metrics.rule_labels(line)[1:] == ("dnat", "udp", "30000-30003")


def test_drift_and_stale_containers():
    fams = families(metrics.render("wg0", PROXY_RESULT, NOW, 0.1))
    in_sync = {s.labels["rule_set"]: s.value for s in fams["wgsp_rule_set_in_sync"].samples}
    assert in_sync == {"public": 1, "share": 0}
    stale = {s.labels["container"]: s.value for s in fams["wgsp_container_address_stale"].samples}
    assert stale == {"web": 1, 'odd"name\\x\n': 0}  # escaped on the way out, read back intact


def test_probes_only_those_that_ran():
    fams = families(metrics.render("wg0", PROXY_RESULT, NOW, 0.1))
    assert [(s.labels["probe"], s.value) for s in fams["wgsp_probe_success"].samples] == [("hub", 1)]


def test_hub_counts_connected_clients():
    result = dict(PROXY_RESULT, client_mode="server", clients_connected=2, rules=[], probes=[])
    fams = families(metrics.render("wg0", result, NOW, 0.1))
    assert fams["wgsp_clients_connected"].samples[0].value == 2


def test_a_failed_collection_says_so_and_exports_nothing_stale():
    text = metrics.render("wg0", None, NOW, 0.1, error="wg0.json: not JSON\nsecond line")
    assert text.startswith("# wgsp: collection failed: wg0.json: not JSON second line\n")
    fams = families(text)
    assert sorted(fams) == ["wgsp_collect_duration_seconds", "wgsp_collect_success", "wgsp_collect_timestamp_seconds"]
    assert fams["wgsp_collect_success"].samples[0].value == 0


class BrokenIPRoute:
    def __init__(self):
        raise OSError(93, "Protocol not supported")


def test_the_writer_replaces_the_file_and_exits_1_when_it_cannot_read(tmp_path, capsys):
    out = tmp_path / "prom" / "wgsp_wg0.prom"
    out.parent.mkdir()
    out.write_text("old\n")
    rc = writer.main(["--interface", "wg0", "--output", str(out)], clock=lambda: NOW, iproute_factory=BrokenIPRoute)
    assert rc == 1
    assert "wgsp_collect_success" in out.read_text() and "old" not in out.read_text()
    assert oct(os.stat(str(out)).st_mode & 0o777) == "0o644"
    assert "Protocol not supported" in capsys.readouterr().err
    assert [p.name for p in out.parent.iterdir()] == ["wgsp_wg0.prom"]  # no temporary file left


def test_a_writer_whose_schedule_is_gone_writes_nothing(tmp_path, capsys):
    out = tmp_path / "wgsp_wg0.prom"
    rc = writer.main(["--interface", "wg0", "--output", str(out), "--schedule", str(tmp_path / "removed.timer")],
                     clock=lambda: NOW, iproute_factory=BrokenIPRoute)
    assert rc == 0 and not out.exists()
    assert "removed.timer is gone: not writing" in capsys.readouterr().err


def test_a_run_under_way_cannot_write_the_file_again_after_its_removal(tmp_path):
    """The race CI met: the schedule is removed while a run is collecting, then the file is removed.
    The run holds the directory's lock until it has written; the removal takes the lock first, so the
    file it removes is the run's, and nothing writes it again."""
    out, schedule = tmp_path / "wgsp_wg0.prom", tmp_path / "wgsp-metrics-wg0.timer"
    schedule.write_text("")
    collecting, finish = threading.Event(), threading.Event()

    class SlowIPRoute(BrokenIPRoute):
        def __init__(self):
            collecting.set()
            finish.wait(10)
            BrokenIPRoute.__init__(self)

    run = threading.Thread(target=writer.main, args=(["--interface", "wg0", "--output", str(out), "--schedule",
                                                      str(schedule)],), kwargs={"iproute_factory": SlowIPRoute})
    run.start()
    try:
        assert collecting.wait(10)
        schedule.unlink()
        threading.Timer(0.3, finish.set).start()
        with writer.output_lock(str(tmp_path)):  # what wg_metrics state=absent does before it removes
            assert out.exists()  # the run finished writing before the lock was given
            out.unlink()
    finally:
        finish.set()
        run.join(10)
    assert not out.exists() and not run.is_alive()
    # and a run the removed schedule had started, which comes to the lock afterwards, writes nothing
    assert writer.main(["--interface", "wg0", "--output", str(out), "--schedule", str(schedule)]) == 0
    assert not out.exists()


def test_the_writer_reports_a_directory_it_cannot_write(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    out = tmp_path / "a-file" / "wgsp_wg0.prom"
    assert writer.main(["--interface", "wg0", "--output", str(out)], iproute_factory=BrokenIPRoute) == 1
    assert "cannot write %s" % out in capsys.readouterr().err


@pytest.mark.parametrize("argv,word", [
    (["--interface", "wg0;x", "--output", "/tmp/x.prom"], "--interface"),
    (["--interface", "wg0", "--output", "relative.prom"], "--output"),
    (["--interface", "wg0", "--output", "/tmp/a b.prom"], "--output"),
    (["--interface", "wg0", "--output", "/tmp/x.prom", "--fresh-seconds", "0"], "--fresh-seconds"),
])
def test_the_writer_refuses_bad_arguments(argv, word, capsys):
    with pytest.raises(SystemExit) as err:
        writer.main(argv)
    assert err.value.code == 2 and word in capsys.readouterr().err


def test_the_zip_is_the_same_bytes_each_build_and_holds_the_writer_closure():
    first, second = bundle.build(), bundle.build()
    assert first == second
    names = zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert names == sorted(names) and "__main__.py" in names
    base = "ansible_collections/wgsp/service_proxy/plugins/module_utils/"
    for needed in ("_status/writer.py", "_status/host.py", "_status/metrics.py", "_firewall/backend.py",
                   "_wireguard/interface.py", "_routes.py"):
        assert base + needed in names
    assert "ansible/module_utils/common/arg_spec.py" in names
    assert not any("modules/" in n or "filter/" in n for n in names)  # module_utils only
    assert zipfile.ZipFile(io.BytesIO(first)).read("ansible/__init__.py") == b""


def test_the_zip_holds_compiled_modules_that_the_writer_uses(tmp_path):
    """Each module has its checked hash-based .pyc beside it, and importing from the zip takes it (the
    module's __file__ is the .pyc): the writer does not compile its sources on each run."""
    raw = bundle.build()
    names = zipfile.ZipFile(io.BytesIO(raw)).namelist()
    assert all(n + "c" in names for n in names if n.endswith(".py") and n != "__main__.py")
    path = tmp_path / "wgsp-metrics.pyz"
    path.write_bytes(raw)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); "
            "from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import writer, host; "
            "print(writer.__file__); print(host.__file__)")
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert [line.endswith(".pyc") for line in proc.stdout.split()] == [True, True], proc.stdout


def test_the_zip_names_its_sources_digest():
    sources = bundle.sources()
    raw = bundle.build(files=sources)
    comment = zipfile.ZipFile(io.BytesIO(raw)).comment.decode()
    assert comment == "wgsp-metrics sha256=" + bundle.digest(sources)
    changed = dict(sources, **{"__main__.py": sources["__main__.py"] + b"# edited\n"})
    assert bundle.digest(changed) != bundle.digest(sources)


def test_installed_digest_of_what_is_no_writer(tmp_path):
    (tmp_path / "text").write_text("not a zip")
    (tmp_path / "other.zip").write_bytes(_plain_zip())
    assert bundle.installed_digest(str(tmp_path / "missing")) is None
    assert bundle.installed_digest(str(tmp_path / "text")) is None
    assert bundle.installed_digest(str(tmp_path / "other.zip")) is None
    (tmp_path / "w.pyz").write_bytes(bundle.build())
    assert bundle.installed_digest(str(tmp_path / "w.pyz")) == bundle.digest(bundle.sources())


def _plain_zip():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("x", b"y")
    return out.getvalue()


def test_the_zip_runs_on_its_own(tmp_path):
    """Run with -I (no PYTHONPATH, no user site) from an empty directory: it imports only what it holds."""
    path = tmp_path / "wgsp-metrics.pyz"
    path.write_bytes(bundle.build())
    proc = subprocess.run([sys.executable, "-I", str(path), "--help"], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0 and "--interface" in proc.stdout, proc.stderr
    out = tmp_path / "wgsp_nothing.prom"
    proc = subprocess.run([sys.executable, "-I", str(path), "--interface", "wgspunit0", "--state-dir",
                           str(tmp_path), "--output", str(out)], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    fams = families(out.read_text())
    assert {s.labels["status"]: s.value for s in fams["wgsp_status"].samples}["absent"] == 1
