"""The per-set lock of wg_dnat / wg_filter (real files and flock in a temporary directory)."""

import os
import stat

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.lock import set_lock


def test_lock_directory_and_file_are_private_whatever_the_umask(tmp_path):
    directory = str(tmp_path / "wgsp")
    old = os.umask(0)
    try:
        with set_lock("dnat", "pub", directory=directory):
            pass
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(os.path.join(directory, "dnat-pub.lock")).st_mode) == 0o600


def test_a_held_lock_makes_the_second_run_wait_then_fail(tmp_path):
    directory = str(tmp_path / "wgsp")
    with set_lock("filter", "pub", directory=directory):
        with pytest.raises(WgspError) as err:
            with set_lock("filter", "pub", directory=directory, timeout=0.3):
                pass
        assert "another run" in err.value.msg
        with set_lock("dnat", "pub", directory=directory, timeout=0):  # another set: its own lock
            pass
    with set_lock("filter", "pub", directory=directory, timeout=0):  # released
        pass


def test_an_unsafe_lock_directory_or_name_is_refused(tmp_path):
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "wgsp"
    link.symlink_to(target)
    with pytest.raises(WgspError) as err:
        with set_lock("dnat", "pub", directory=str(link)):
            pass
    assert "lock directory" in err.value.msg and os.listdir(str(target)) == []
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(WgspError):
        with set_lock("dnat", "pub", directory=str(shared)):
            pass
    with pytest.raises(ValidationError):
        with set_lock("dnat", "../x", directory=str(tmp_path / "ok")):
            pass
