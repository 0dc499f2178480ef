"""wgsp_redact_keys: what the debug playbook writes to a report file on the controller. Every private
or preshared key goes, in base64 (wg-quick config, JSON) and in hex (the UAPI's form); the public keys
the caller lists stay readable; text that only looks like part of a key is left alone."""

import base64
import binascii
import json

import pytest

from ansible_collections.wgsp.service_proxy.plugins.filter import status_views as views
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys

PRIV = "8FACF4WKr+9dy8rI36lCB8jk49wiJ34pf2Yv8iUW+3w="  # fixed: parametrize ids must be the same in every worker
PUB = keys.public_key(PRIV)
PEER_PRIV = keys.generate_private_key()
PEER_PUB = keys.public_key(PEER_PRIV)
PSK = keys.generate_private_key()  # a preshared key has the same form: 32 random bytes
SECRETS = (PRIV, PEER_PRIV, PSK)


def hex_of(key):
    return binascii.hexlify(base64.b64decode(key)).decode()


def test_filter_is_registered():
    assert views.FilterModule().filters()["wgsp_redact_keys"] is views.redact_keys


def test_wg_quick_config_keeps_listed_public_keys_only():
    config = ("[Interface]\nPrivateKey = %s\nAddress = 10.7.0.3/32\n\n[Peer]\n# hub\nPublicKey = %s\n"
              "PresharedKey = %s\nAllowedIPs = 10.7.0.0/24\n") % (PRIV, PEER_PUB, PSK)
    out = views.redact_keys(config, [PEER_PUB])
    assert out == ("[Interface]\nPrivateKey = <redacted>\nAddress = 10.7.0.3/32\n\n[Peer]\n# hub\nPublicKey = %s\n"
                   "PresharedKey = <redacted>\nAllowedIPs = 10.7.0.0/24\n") % PEER_PUB


def test_without_a_list_every_key_goes_public_ones_too():
    out = views.redact_keys("own %s peer %s" % (PUB, PEER_PUB))
    assert out == "own <redacted> peer <redacted>"
    assert views.redact_keys("own %s" % PUB, []) == "own <redacted>"


def test_hex_keys_of_the_uapi_are_redacted_even_when_their_public_key_is_listed():
    uapi = "private_key=%s\npublic_key=%s\npreshared_key=%s\nlisten_port=51820\n" % (
        hex_of(PRIV), hex_of(PEER_PUB), hex_of(PSK))
    out = views.redact_keys(uapi, [PUB, PEER_PUB])
    assert out == ("private_key=<redacted-hex>\npublic_key=<redacted-hex>\npreshared_key=<redacted-hex>\n"
                   "listen_port=51820\n")
    assert views.redact_keys(hex_of(PRIV).upper()) == "<redacted-hex>"


def test_structures_are_rendered_then_redacted():
    report = {"interface": {"private_key": PRIV, "public_key": PUB},
              "peers": [{"public_key": PEER_PUB, "preshared_key": PSK}]}
    out = views.redact_keys(report, [PUB, PEER_PUB])
    assert isinstance(out, str) and PUB in out and PEER_PUB in out
    assert out.count("<redacted>") == 2
    for secret in SECRETS:
        assert secret not in out
    assert views.redact_keys(json.dumps(report), [PUB]).count("<redacted>") == 3


@pytest.mark.parametrize("text", [
    "sha256:" + "a" * 63,                          # 63 hex digits: not a key
    "x" * 44,                                      # 44 characters without the padding
    "A" * 42 + "B=",                               # the 43rd character of a 32-byte key is one of 16
    "=" * 44,
    "10.7.0.0/24 198.51.100.2:8080 [fd00:7::2]:443",
])
def test_what_is_not_a_key_stays(text):
    assert views.redact_keys(text) == text


@pytest.mark.parametrize("wrap", ["%s", "'%s'", '"%s"', "(%s)", "key=%s;", "%s\n"])
def test_a_key_between_delimiters_is_found(wrap):
    assert views.redact_keys(wrap % PRIV) == wrap % "<redacted>"


@pytest.mark.parametrize("text", ["Z" + PRIV, PRIV + "Z", "+" + PRIV, PRIV + "=", "f" + hex_of(PRIV), hex_of(PRIV) + "0"])
def test_part_of_a_longer_token_is_not_a_key(text):
    """A longer base64 or hex run is something else (a certificate, a digest): it is left whole."""
    assert views.redact_keys(text) == text
