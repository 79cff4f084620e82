"""The node plugin's stderr (what `kubectl logs` shows) carries its mount daemons' lines: with
--log-format json every line of it parses, the daemon's naming its volume and node."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.integration.csi.kubelet_calls import KubeletVolume
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def test_the_plugin_log_shows_its_daemons_lines_as_json(
    plugin_root: Path, s3_server: S3Server, bucket: str, fuse_available: None
) -> None:
    plugin = NodePlugin(plugin_root)
    plugin.extra_args = ["--log-format", "json"]
    try:
        plugin.start()
        volume = KubeletVolume.on_s3(plugin.kubelet_dir, s3_server, bucket, "logged")
        with plugin.channel() as channel:
            node = plugin.node(channel)
            volume.stage(node)
            deadline = time.monotonic() + 30
            while "mounted" not in plugin.log_path.read_text():
                assert time.monotonic() < deadline, plugin.log_tail()
                time.sleep(0.2)
            volume.unstage(node)
    finally:
        plugin.cleanup()

    lines = [json.loads(line) for line in plugin.log_path.read_text().splitlines() if line.strip()]
    daemon_lines = [line for line in lines if line["program"] == "razorfs"]
    assert any(line["message"].startswith("mounted") for line in daemon_lines)
    assert all(line["volume"] == volume.volume_id and line["node"] for line in daemon_lines)
    assert {line["program"] for line in lines} == {"razorfs", "razorfs-node"}
    assert s3_server.secret_key not in plugin.log_path.read_text()
