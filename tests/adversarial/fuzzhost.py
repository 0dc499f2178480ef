"""The adversarial layer's test host: one namespace host (SETUP underlay, a private and a preshared
key of its own, a module runner inside), reset between examples, and the property every example must
hold (``outcome``)."""

import copy
import json
import os
import re
import subprocess
import tempfile

import pytest

from conftest import require_root_tools
from hoststate import SETUP, reset, settled, snapshot
from modharness import last_result, module_args

KEY_RE = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
PEER_PUB = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
FUZZ_KEY = "/etc/wireguard/fuzz.key"
FUZZ_PSK = "/etc/wireguard/fuzz.psk"


class FuzzHost:
    """One namespace host on the SETUP underlay with a private and a preshared key of its own."""

    def __init__(self, lab, name):
        self.host = lab.host(name)
        self.host.run(SETUP)
        self.private = self.host.run(["wg", "genkey"]).stdout.strip()
        self.psk = self.host.run(["wg", "genpsk"]).stdout.strip()
        self.cwd = os.path.join(lab.tmpdir, "cwd-" + name)  # relative paths land here, never in the repo
        os.makedirs(self.cwd, exist_ok=True)
        from rig import PYTHON, REPO

        self.runner = self.host.popen([PYTHON, os.path.join(os.path.dirname(os.path.abspath(__file__)), "modrunner.py")],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                      env=dict(os.environ, PYTHONPATH=os.path.join(REPO, "collections")))
        self.reset()
        self.baseline = settled(self.host)

    def reset(self):
        reset(self.host)
        self.host.run("umask 077; printf '%%s\\n' '%s' > %s; printf '%%s\\n' '%s' > %s" % (
            self.private, FUZZ_KEY, self.psk, FUZZ_PSK))
        for name in os.listdir(self.cwd):
            os.unlink(os.path.join(self.cwd, name))

    def secrets(self):
        """The host's keys plus every private/preshared key a module wrote under /etc/wireguard."""
        found = {self.private, self.psk}
        text = self.host.run("find /etc/wireguard /etc/wg-service-proxy -type f -exec cat {} + 2>/dev/null; true").stdout
        for line in text.splitlines():
            if "PublicKey" in line:
                continue
            found.update(KEY_RE.findall(line))
        return found

    def run(self, module, args):
        """Run ``module`` on the host (from ``self.cwd``: a relative path must never land in the repository)."""
        from rig import REPO

        document = module_args(args, check_mode=False, diff=True, tmpdir=self.host.lab.tmpdir,
                               remote_tmp=self.host.lab.tmpdir, keep_remote_files=False)
        fd, path = tempfile.mkstemp(prefix="args-", suffix=".json", dir=self.host.lab.tmpdir)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
        request = {"module": os.path.join(REPO, "plugins", "modules", module + ".py"), "args": path,
                   "cwd": self.cwd, "tmp": self.host.lab.tmpdir}
        self.runner.stdin.write(json.dumps(request) + "\n")
        self.runner.stdin.flush()
        answer = json.loads(self.runner.stdout.readline())
        os.unlink(path)
        result = last_result(answer["stdout"])
        assert result is not None, "%s printed no JSON (rc=%d): %s %s" % (module, answer["rc"], answer["stdout"],
                                                                          answer["stderr"])
        result.update(_rc=answer["rc"], _stderr=answer["stderr"], _stdout=answer["stdout"])
        return result


def with_value(base, path, value):
    args = copy.deepcopy(base)
    node = args
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return args


def outcome(fz, module, args, option, must_accept=False):
    """Run ``module`` with ``args`` on the reset host and check the layer's property; returns the result."""
    fz.reset()
    before = snapshot(fz.host)
    assert before == fz.baseline, "the reset did not restore the host"
    first = fz.run(module, args)
    outputs = [first]
    if first.get("failed"):
        text = first.get("msg", "")
        assert not must_accept, "%s refused what the filters produced: %s\n%r" % (module, text, args)
        assert "Traceback" not in first["_stderr"] + first["_stdout"] and "exception" not in first, (args, first)
        assert option in text, "%s: the message does not name %s: %s\n%r" % (module, option, text, args)
        assert snapshot(fz.host) == before, "%s refused %r but changed the host" % (module, args)
    else:
        applied = snapshot(fz.host)
        second = fz.run(module, args)
        outputs.append(second)
        assert not second.get("failed"), (args, second.get("msg"))
        assert second["changed"] is False, "%s: the second run changed: %s\n%r" % (module, second, args)
        assert snapshot(fz.host) == applied
    secrets = fz.secrets()
    for result in outputs:
        text = json.dumps(result)
        assert not [s for s in secrets if s in text], "%s %r: a key appears in the output" % (module, args)
    return first


@pytest.fixture(scope="module")
def fuzz_lab():
    """One lab for a whole test module: every example reuses its host (reset between examples)."""
    require_root_tools("unshare", "nsenter", "ip", "iptables", "ip6tables", "nft", "wireguard-go", "wg")
    from rig import Lab

    the_lab = Lab()
    try:
        yield the_lab
    finally:
        the_lab.close()
