"""The compact forms have one parser (``_common.forms``): the roles' filters, ``wg_dnat``'s
``compact_rules`` and the ``.env`` importer read an entry the same way, and accept or refuse the
same entries with the same validators."""

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.wgsp.service_proxy.plugins.filter import service_proxy
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import forms
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall import rules
from ansible_collections.wgsp.service_proxy.plugins.plugin_utils.env_import import EnvImportError, convert


@pytest.mark.parametrize("parse,entry,expected", [
    (forms.share_form, "web:80", {"name": "web", "proto": "tcp", "port": "80"}),
    (forms.share_form, " web:UDP:53 ", {"name": "web", "proto": "udp", "port": "53"}),
    (forms.publish_form, "8080:10.7.0.2:80", {"proto": None, "port": "8080", "target": "10.7.0.2:80"}),
    (forms.publish_form, "udp:53:[fd00::2]:53", {"proto": "udp", "port": "53", "target": "[fd00::2]:53"}),
    (forms.publish_form, "80:share1:web", {"proto": None, "port": "80", "target": "share1:web"}),
    (forms.access_form, "both:10.7.0.2:53", {"proto": "both", "target": "10.7.0.2:53"}),
    (forms.access_form, "share1:web", {"proto": None, "target": "share1:web"}),
    (forms.host_service_form, "tcp:8080", {"proto": "tcp", "port": "8080", "to_port": "8080"}),
    (forms.host_service_form, "TCP:8080:80", {"proto": "tcp", "port": "8080", "to_port": "80"}),
    (forms.external_form, "tcp:8443:[fd00::9]:443",
     {"proto": "tcp", "port": "8443", "to_address": "fd00::9", "to_port": "443"}),
])
def test_each_form_splits_into_named_parts(parse, entry, expected):
    assert parse("v", entry) == expected


@pytest.mark.parametrize("parse,entry", [
    (forms.share_form, "web"), (forms.share_form, "web:tcp:80:1"), (forms.share_form, ""),
    (forms.publish_form, "8080"), (forms.publish_form, "tcp:8080"), (forms.host_service_form, "tcp"),
    (forms.external_form, "tcp:80:10.0.0.9"), (forms.external_form, "tcp:80:[fd00::9:80"),
])
def test_a_shapeless_entry_names_the_field(parse, entry):
    with pytest.raises(ValidationError) as info:
        parse("share_client_services", entry)
    assert info.value.field == "share_client_services"


@pytest.mark.parametrize("entry,expected", [
    ("dummy:tcp:80", {"proto": "tcp", "to_container": "dummy", "port": "80"}),
    ("dummy:80", {"proto": "tcp", "to_container": "dummy", "port": "80"}),
    ("80:10.7.0.2:8080", {"proto": "tcp", "port": "80", "to_address": "10.7.0.2", "to_port": "8080"}),
    ("UDP:53:[fd00::2]:53", {"proto": "udp", "port": "53", "to_address": "fd00::2", "to_port": "53"}),
    ("8000-8010:10.7.0.2:8000-8010",
     {"proto": "tcp", "port": "8000-8010", "to_address": "10.7.0.2", "to_port": "8000-8010"}),
])
def test_wg_dnat_compact_rules_tell_the_forms_apart(entry, expected):
    assert forms.compact_rule("compact_rules[0]", entry) == expected


# One entry, three readers: the share_client filter, wg_dnat's compact rule, the importer.
SHARE_ENTRIES = [
    ("web:80", True),
    ("web:udp:53", True),
    ("web:TCP:80", True),
    ("web:tcp:0", False),
    ("web:tcp:70000", False),
    ("web:sctp:80", False),
    ("-web:80", False),
    ("w" * 129 + ":80", False),  # a name Docker refuses: refused on the controller as on the host
    ("web$(id):80", False),
]


def _filter_accepts(entry):
    try:
        service_proxy.share_services([entry])
        return True
    except AnsibleFilterError:
        return False


def _module_accepts(entry):
    try:
        rules.validate_specs(compact_rules=[entry])
        return True
    except ValidationError:
        return False


def _importer_accepts(entry):
    try:
        convert("CLIENT_MODE=share\nWG_ADDRESS=10.7.0.2/32\nWG_DOCKER_ALLOWED_HOSTS=%s\n" % entry, "share1")
        return True
    except EnvImportError:
        return False


@pytest.mark.parametrize("entry,ok", SHARE_ENTRIES)
def test_share_entries_are_judged_alike_everywhere(entry, ok):
    assert (_filter_accepts(entry), _module_accepts(entry), _importer_accepts(entry)) == (ok, ok, ok)


def test_an_importer_error_names_the_option_the_item_and_the_problem():
    with pytest.raises(EnvImportError) as info:
        convert("CLIENT_MODE=share\nWG_ADDRESS=10.7.0.2/32\nWG_DOCKER_ALLOWED_HOSTS=web:tcp:70000\n", "share1")
    text = str(info.value)
    assert text.startswith("WG_DOCKER_ALLOWED_HOSTS: 'web:tcp:70000' is not name[:proto]:port (") and "70000" in text
