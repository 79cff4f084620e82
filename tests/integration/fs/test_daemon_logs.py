"""A mount daemon started with --log-format json writes only JSON lines, each naming its volume
and node, and none carrying the volume's secret key."""

from __future__ import annotations

import json

from tests.integration.fs.conftest import MountFactory
from tests.realparts.s3server import S3Server


def test_a_json_daemon_log_parses_line_by_line_with_volume_and_node(
    razorfs_mount: MountFactory, s3_server: S3Server
) -> None:
    vol = razorfs_mount(extra=("--log-format", "json", "--volume-name", "team-a/data", "--node-name", "node-1"))
    (vol.mountpoint / "f.txt").write_text("hello")
    vol.umount()

    lines = [json.loads(line) for line in vol.log.splitlines() if line.strip()]

    assert any("mounted" in line["message"] for line in lines)
    assert all(line["volume"] == "team-a/data" and line["node"] == "node-1" for line in lines)
    assert all(line["program"] == "razorfs" and line["level"] for line in lines)
    assert s3_server.secret_key not in vol.log
