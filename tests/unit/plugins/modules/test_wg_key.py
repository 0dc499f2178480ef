"""wg_key: generated on the host, 0600 in a 0700 directory, public key only, check mode writes nothing."""

import os
import stat

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import ensure_key, public_key


def test_check_mode_generates_nothing(tmp_path):
    path = tmp_path / "keys" / "wg0.key"
    assert ensure_key(str(path), check_mode=True) == (True, None)
    assert not path.exists() and not path.parent.exists()


def test_generates_once_with_private_modes(tmp_path):
    path = tmp_path / "keys" / "wg0.key"
    generated, public = ensure_key(str(path))
    assert generated and public
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    private = path.read_text().strip()
    assert public_key(private) == public and private != public
    assert ensure_key(str(path)) == (False, public)
    generated, rotated = ensure_key(str(path), regenerate=True)
    assert generated and rotated != public


def test_a_file_without_a_key_is_an_error_not_overwritten(tmp_path):
    path = tmp_path / "wg0.key"
    path.write_text("not a key\n")
    try:
        ensure_key(str(path))
    except Exception as exc:  # noqa: BLE001
        assert "does not hold a WireGuard key" in str(exc)
    else:
        raise AssertionError("expected a failure")
    assert path.read_text() == "not a key\n"


def test_generate_false_only_reads(tmp_path):
    """A read (the roles' delegated read of another host's key) never creates a key or its directory."""
    path = tmp_path / "keys" / "wg0.key"
    assert ensure_key(str(path), generate=False) == (False, None)
    assert ensure_key(str(path), generate=False, check_mode=True) == (False, None)
    assert not path.exists() and not path.parent.exists()
    generated, public = ensure_key(str(path))
    assert generated
    assert ensure_key(str(path), generate=False) == (False, public)


def test_generate_false_refuses_regenerate(tmp_path):
    path = tmp_path / "wg0.key"
    try:
        ensure_key(str(path), regenerate=True, generate=False)
    except Exception as exc:  # noqa: BLE001
        assert str(exc).startswith("regenerate: ") and getattr(exc, "field", None) == "regenerate"
    else:
        raise AssertionError("expected a failure")
    assert not path.exists()
