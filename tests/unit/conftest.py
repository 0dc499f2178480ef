"""Unit tests: module code runs in this process, so nothing it records may reach the machine."""

import pytest


@pytest.fixture(autouse=True)
def _boot_script_records(tmp_path_factory, monkeypatch):
    """Unit tests run module code in this process: its boot-script records go to a temporary
    directory, never to the machine's /var/lib/wgsp-service-proxy."""
    from ansible_collections.wgsp.service_proxy.plugins.module_utils import _fw_persist

    path = str(tmp_path_factory.mktemp("records") / "boot-scripts")
    monkeypatch.setattr(_fw_persist, "RECORD_DIR", path)
    yield path
