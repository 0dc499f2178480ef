"""docs/prometheus-alerts.yml and docs/metrics.md against the metric families wg_metrics writes
(``_status.metrics.FAMILIES``): a renamed or removed metric fails here instead of leaving an alert
that can never fire or a table row that describes nothing. No network, no Prometheus needed."""

import os
import re

import yaml

from conftest import REPO

from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.metrics import FAMILIES

ALERTS = os.path.join(REPO, "docs", "prometheus-alerts.yml")
METRICS_MD = os.path.join(REPO, "docs", "metrics.md")
NAMES = set(name for name, _kind, _help in FAMILIES)
METRIC_RE = re.compile(r"\bwgsp_[a-z_]+")
DURATION_RE = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")
SEVERITIES = ("critical", "warning", "info")
REQUIRED = ("WgspHandshakeTooOld", "WgspRuleSetDrift", "WgspContainerAddressStale", "WgspMetricsCollectFailing",
            "WgspMetricsStale", "WgspTunnelDown")


def load_rules():
    with open(ALERTS) as handle:
        doc = yaml.safe_load(handle)
    assert isinstance(doc, dict) and list(doc) == ["groups"], "the file must hold only `groups`"
    groups = doc["groups"]
    assert isinstance(groups, list) and groups
    rules = []
    for group in groups:
        assert isinstance(group.get("name"), str) and group["name"], group
        assert isinstance(group.get("rules"), list) and group["rules"], group["name"]
        rules.extend(group["rules"])
    return rules


def metrics_md():
    with open(METRICS_MD) as handle:
        return handle.read()


def fenced(text, lang):
    return re.findall(r"^```%s\n(.*?)^```" % re.escape(lang), text, re.S | re.M)


def test_the_rules_file_is_well_formed():
    rules = load_rules()
    names = [rule.get("alert") for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names: %s" % names
    for rule in rules:
        assert isinstance(rule.get("alert"), str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", rule["alert"]), rule
        assert "record" not in rule, rule["alert"]
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), rule["alert"]
        assert rule.get("labels", {}).get("severity") in SEVERITIES, rule["alert"]
        annotations = rule.get("annotations") or {}
        assert isinstance(annotations.get("summary"), str) and annotations["summary"].strip(), rule["alert"]
        assert isinstance(annotations.get("description"), str) and annotations["description"].strip(), rule["alert"]
        if "for" in rule:
            assert DURATION_RE.match(str(rule["for"])), (rule["alert"], rule["for"])
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}, rule["alert"]


def test_the_required_alerts_are_there():
    names = set(rule["alert"] for rule in load_rules())
    assert set(REQUIRED) <= names, sorted(set(REQUIRED) - names)


def test_every_expr_uses_exported_metrics_only():
    for rule in load_rules():
        used = set(METRIC_RE.findall(rule["expr"]))
        assert used, "%s uses no wgsp metric" % rule["alert"]
        assert used <= NAMES, "%s uses unknown metrics %s" % (rule["alert"], sorted(used - NAMES))


def test_every_family_is_in_the_table_with_its_type():
    text = metrics_md()
    for name, kind, _help in FAMILIES:
        assert re.search(r"^\| `%s` \| %s \|" % (re.escape(name), kind), text, re.M), \
            "docs/metrics.md has no table row for %s (%s)" % (name, kind)


def test_the_docs_name_no_other_metric():
    text = metrics_md()
    rows = set(re.findall(r"^\| `(wgsp_[a-z_]+)` \|", text, re.M))
    assert rows <= NAMES, sorted(rows - NAMES)
    blocks = fenced(text, "promql")
    assert blocks, "docs/metrics.md has no promql example"
    used = set(METRIC_RE.findall("\n".join(blocks)))
    assert used <= NAMES, sorted(used - NAMES)


def test_the_docs_list_every_alert_and_the_inline_example_matches_the_file():
    text = metrics_md()
    rules = dict((rule["alert"], rule) for rule in load_rules())
    for name in rules:
        assert re.search(r"^\| `%s` \|" % name, text, re.M), "docs/metrics.md does not list %s" % name
    assert "(prometheus-alerts.yml)" in text, "docs/metrics.md does not link the rules file"
    loaded = [yaml.safe_load(block) for block in fenced(text, "yaml")]
    examples = [item for doc in loaded if isinstance(doc, list)
                for item in doc if isinstance(item, dict) and "alert" in item]
    assert examples, "docs/metrics.md shows no alert rule"
    for example in examples:
        rule = rules[example["alert"]]
        for key in ("expr", "for", "labels"):
            assert example.get(key) == rule.get(key), (example["alert"], key)
        for key, value in example.get("annotations", {}).items():
            assert value == rule["annotations"][key], (example["alert"], key)
