"""Issue 11 items 8, 12 and 13 on real namespace hosts: the firewall apply of wg_dnat / wg_filter is
one transaction, concurrent runs of one set converge, and an admin's own jumps into our chains are
left alone (or, where they block a change, refuse it before anything changes, naming them).

iptables is iptables-nft (as on Debian): ``iptables-restore`` commits each ``*table`` on its own, so
a failure in ``filter`` after ``nat`` committed must be rolled back by the module. Failures that
cannot be foreseen (an admin adding a rule while the module runs) and slow hosts are produced with
a small wrapper put first in the module's PATH: it adds the admin's rule or waits, then runs the
real tool on the real host.
"""

import os
import shutil
import stat
import threading

import pytest

from conftest import require_root_tools

DNAT = {"name": "pub", "in_interface": "eth1", "out_interface": "wg0", "masquerade": True,
        "rules": [{"port": 80, "to_address": "10.7.0.2"},
                  {"proto": "udp", "port": 5353, "to_address": "fd00:7::2", "to_port": 53}]}
FILTER = {"name": "shield", "hook": "input", "in_interface": "eth1",
          "allow": [{"proto": "tcp", "port": 22}], "policy": "drop"}
# rules of the admin's that were there before; one sits in front of where our jumps go
FOREIGN = ("iptables -t nat -A PREROUTING -p tcp --dport 22 -j DNAT --to-destination 10.0.0.9; "
           "iptables -A FORWARD -i br-x -j ACCEPT; ip6tables -A FORWARD -s 2001:db8:1::/48 -j ACCEPT")


def snapshot(host):
    """Every ruleset of the host, counters stripped (byte comparison)."""
    return saved(host) + host.run("nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'").stdout


def saved(host):
    """iptables-save and ip6tables-save, counters stripped: chains sorted by name, rules in order. (A
    rolled-back chain is a new nft object, so ``nft list ruleset`` may list the chains in another
    order; the rules, their order and every jump's position are what this compares.)"""
    return host.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                    "ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'").stdout


def new_host(lab):
    require_root_tools("iptables", "ip6tables", "nft", "iptables-restore", "ip6tables-restore")
    host = lab.host("fw")
    host.run(FOREIGN)
    return host


def wrapper(lab, tool, script):
    """A directory holding ``tool``: runs ``script`` (sh; ``$REAL`` is the real tool, ``$STATE`` a
    scratch file) and then the real tool with the same arguments and stdin."""
    real = shutil.which(tool)
    directory = os.path.join(lab.tmpdir, "wrap-%s-%d" % (tool, len(os.listdir(lab.tmpdir))))
    os.mkdir(directory)
    path = os.path.join(directory, tool)
    with open(path, "w") as handle:
        handle.write("#!/bin/sh\nREAL=%s\nSTATE=%s/state\n%s\nexec \"$REAL\" \"$@\"\n" % (real, directory, script))
    os.chmod(path, stat.S_IRWXU)
    return {"PATH": "%s:%s" % (directory, os.environ["PATH"])}


def run_dnat(host, args, **kwargs):
    return host.module("wg_dnat", dict(DNAT, backend="iptables", **args), **kwargs)


# ---------------------------------------------------------------------------------------------
# 13: an admin's own jumps into our chains


def test_reapply_keeps_an_admins_own_jump_into_our_chain(lab):
    host = new_host(lab)
    assert run_dnat(host, {})["changed"]
    assert host.module("wg_filter", dict(FILTER, backend="iptables"))["changed"]
    host.run("iptables -t nat -A PREROUTING -i eth9 -j WGSP-PUB-PRE; iptables -A INPUT -i eth9 -j WGSP-SHIELD-IN; "
             "ip6tables -A FORWARD -i eth9 -g WGSP-PUB-FWD")
    admin = snapshot(host)

    again = run_dnat(host, {})
    assert again["changed"] is False and again["plan"] == [], again
    assert host.module("wg_filter", dict(FILTER, backend="iptables"))["changed"] is False
    assert snapshot(host) == admin

    # a real change rewrites our chains and still leaves the admin's jumps where they are
    changed = run_dnat(host, {"rules": DNAT["rules"] + [{"port": 81, "to_address": "10.7.0.2"}]})
    assert changed["changed"] and not changed.get("failed"), changed
    assert not any("delete jump" in action for action in changed["plan"]), changed["plan"]
    rules = host.run("iptables -t nat -S PREROUTING; iptables -S INPUT; ip6tables -S FORWARD").stdout
    for line in ("-A PREROUTING -i eth9 -j WGSP-PUB-PRE", "-A INPUT -i eth9 -j WGSP-SHIELD-IN",
                 "-A FORWARD -i eth9 -g WGSP-PUB-FWD"):
        assert line in rules.splitlines()


@pytest.mark.parametrize("module", ["wg_dnat", "wg_filter"])
def test_absent_blocked_by_an_admins_goto_changes_nothing_and_names_it(lab, module):
    """Item 8's audit case: our chain is busy (an admin's ``-g``); nothing may be removed half-way."""
    host = new_host(lab)
    args = dict(DNAT if module == "wg_dnat" else FILTER, backend="iptables")
    chain, blocker = (("WGSP-PUB-FWD", "-A FORWARD -i eth9 -g WGSP-PUB-FWD") if module == "wg_dnat"
                      else ("WGSP-SHIELD-IN", "-A INPUT -i eth9 -g WGSP-SHIELD-IN"))
    assert host.module(module, args)["changed"]
    host.run("iptables %s" % blocker)
    before = snapshot(host)
    absent = {"name": args["name"], "state": "absent", "backend": "iptables"}

    check = host.module(module, absent, check_mode=True)
    assert check.get("failed") and blocker in check["msg"], check
    assert snapshot(host) == before

    gone = host.module(module, absent)
    assert gone.get("failed") and blocker in gone["msg"] and chain in gone["msg"], gone
    assert snapshot(host) == before

    # once the admin removed it, absent removes everything of ours
    host.run("iptables %s" % blocker.replace("-A ", "-D ", 1))
    assert host.module(module, absent)["changed"]
    assert "WGSP" not in host.run("iptables-save; ip6tables-save").stdout


# ---------------------------------------------------------------------------------------------
# 8: a failure nobody could foresee (the admin's rule arrives while the module runs) is rolled back


@pytest.mark.parametrize("family", [4, 6])
def test_failed_apply_rolls_back_every_committed_table(lab, family):
    host = new_host(lab)
    assert run_dnat(host, {})["changed"]
    # the admin's rule now sits in front of our jump: the rollback must put it back at position 2
    host.run("iptables -t nat -I PREROUTING 1 -i eth8 -j RETURN; ip6tables -t nat -I POSTROUTING 1 -o eth8 -j RETURN")
    before = saved(host)
    tool = "iptables" if family == 4 else "ip6tables"
    blocker = "-A FORWARD -i eth9 -g WGSP-PUB-FWD"
    env = wrapper(lab, "%s-restore" % tool,
                  'case " $* " in *" --test "*) ;; *) [ -e "$STATE" ] || { touch "$STATE"; '
                  '%s -A FORWARD -i eth9 -g WGSP-PUB-FWD; } ;; esac' % shutil.which(tool))

    gone = host.module("wg_dnat", {"name": "pub", "state": "absent", "backend": "iptables"}, env=env)
    assert gone.get("failed"), gone
    assert blocker in gone["msg"] and "rolled back" in gone["msg"], gone["msg"]
    # the previous state is back (jump positions included); only the admin's new rule was added
    host.run("%s %s" % (tool, blocker.replace("-A ", "-D ", 1)))
    assert saved(host) == before
    assert "-A PREROUTING -i eth8 -j RETURN\n-A PREROUTING -m comment" in before


def test_nft_apply_is_one_transaction(lab):
    """``nft -f`` is one kernel transaction: a failing last command leaves the previous table."""
    host = new_host(lab)
    args = dict(DNAT, backend="nftables")
    assert host.module("wg_dnat", args)["changed"]
    before = snapshot(host)
    # the real apply gets one more command the kernel refuses (not the ``-c`` validation run)
    env = wrapper(lab, "nft", 'case " $* " in *" -f "*) case " $* " in *" -c "*) ;; *) '
                              '{ cat; echo "delete table inet wgsp_never_there"; } > "$STATE"; '
                              'exec "$REAL" "$@" < "$STATE" ;; esac ;; esac')
    changed = host.module("wg_dnat", dict(args, rules=DNAT["rules"][:1]), env=env)
    assert changed.get("failed") and "wgsp_never_there" in changed["msg"], changed
    assert snapshot(host) == before


# ---------------------------------------------------------------------------------------------
# 12: two runs of one set at the same time


@pytest.mark.parametrize("module", ["wg_dnat", "wg_filter"])
def test_concurrent_runs_of_one_set_converge(lab, module):
    host = new_host(lab)
    args = dict(DNAT if module == "wg_dnat" else FILTER, backend="iptables")
    # a slow host: each validation takes a second, so both runs have read the rules before either applies
    env = wrapper(lab, "iptables-restore", 'case " $* " in *" --test "*) sleep 1 ;; esac')
    results = [None, None]

    def one(i):
        results[i] = host.module(module, args, env=env)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not any(r.get("failed") for r in results), results
    assert sorted(r["changed"] for r in results) == [False, True], results
    saved = host.run("iptables-save; ip6tables-save").stdout.splitlines()
    jumps = [line for line in saved if line.startswith("-A ") and "-j WGSP-" in line]
    chains = ("WGSP-PUB-PRE", "WGSP-PUB-POST", "WGSP-PUB-FWD") if module == "wg_dnat" else ("WGSP-SHIELD-IN",)
    for chain in chains:
        assert len([j for j in jumps if j.endswith("-j " + chain)]) == 2, jumps  # one per family
    assert len(jumps) == 2 * len(chains), jumps
    assert host.module(module, args)["changed"] is False
