"""Keys: X25519 against RFC 7748 and `wg pubkey`, validation messages, key files."""

import base64
import binascii
import os
import stat

import pytest
# ansible-core depends on cryptography, so wherever the collection's tests run it is there: a hard import
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError

# (private, public) pairs printed by `wg genkey | tee /dev/stderr | wg pubkey` (wireguard-tools 1.0.20210914)
WG_VECTORS = [
    ("qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE=", "EtlJrivFec+aC+AaZqWvrvxbjHtkj6Y4ipbkhk+/YX0="),
    ("YEqAkNDbYPbSfPdtjp/ffbx9EBDuCSO6sNYwp2r2ElE=", "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="),
    ("KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo=", "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="),
]

# RFC 7748 section 5.2 test vectors (scalar, u, output), hex
RFC_VECTORS = [
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
]


@pytest.mark.parametrize("scalar,u,expected", RFC_VECTORS)
def test_x25519_rfc7748(scalar, u, expected):
    out = keys.x25519(binascii.unhexlify(scalar), binascii.unhexlify(u))
    assert binascii.hexlify(out).decode() == expected


def test_x25519_rfc7748_diffie_hellman():
    # RFC 7748 section 6.1: Alice's and Bob's public keys
    alice = binascii.unhexlify("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    bob = binascii.unhexlify("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    base = (9).to_bytes(32, "little")
    assert binascii.hexlify(keys.x25519(alice, base)).decode() == \
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    assert binascii.hexlify(keys.x25519(bob, base)).decode() == \
        "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"


@pytest.mark.parametrize("private,public", WG_VECTORS)
def test_public_key_matches_wg_pubkey(private, public):
    assert keys.public_key(private) == public


def test_x25519_matches_cryptography_on_random_keys():
    for _round in range(5):
        private = keys.generate_private_key()
        theirs = x25519.X25519PrivateKey.from_private_bytes(base64.b64decode(private)).public_key()
        raw = theirs.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        assert keys.public_key(private) == base64.b64encode(raw).decode()


def test_generated_key_is_clamped_and_random():
    a, b = keys.generate_private_key(), keys.generate_private_key()
    assert a != b
    raw = base64.b64decode(a)
    assert len(raw) == 32 and raw[0] & 7 == 0 and raw[31] & 128 == 0 and raw[31] & 64 == 64
    assert len(keys.public_key(a)) == 44


@pytest.mark.parametrize("value,problem", [
    ("", "must not be empty"),
    ("abc", "not valid base64"),
    (base64.b64encode(b"x" * 31).decode(), "decodes to 31 bytes"),
    (base64.b64encode(b"x" * 33).decode(), "decodes to 33 bytes"),
    ("qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE=\nlisten_port=1", "newline"),
    ("qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGV!=", "not valid base64"),
])
def test_check_key_rejects_without_echo(value, problem):
    with pytest.raises(ValidationError) as err:
        keys.check_key("peers[0].preshared_key", value)
    assert err.value.msg.startswith("peers[0].preshared_key: ")
    assert problem in err.value.msg
    if value:
        assert value.split("\n")[0] not in err.value.msg


def test_hex_roundtrip():
    private = WG_VECTORS[0][0]
    assert keys.b64_from_hex(keys.hex_key(private)) == private


def test_key_file_written_0600_in_new_0700_dir(tmp_path):
    path = str(tmp_path / "wireguard" / "wg0.key")
    keys.write_key_file(path, WG_VECTORS[0][0])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    assert keys.read_key_file("private_key_path", path) == WG_VECTORS[0][0]
    assert os.listdir(os.path.dirname(path)) == ["wg0.key"]  # no temp file left behind


def test_read_key_file_missing_and_bad(tmp_path):
    assert keys.read_key_file("private_key_path", str(tmp_path / "nope")) is None
    bad = tmp_path / "bad.key"
    bad.write_text("secret-but-not-a-key\n")
    with pytest.raises(ValidationError) as err:
        keys.read_key_file("private_key_path", str(bad))
    assert "private_key_path" in err.value.msg and "secret-but-not-a-key" not in err.value.msg
