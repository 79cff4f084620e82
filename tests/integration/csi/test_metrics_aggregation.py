"""One endpoint per node: the plugin's --metrics-port serves every mounted volume's daemon
metrics, labelled by volume and node, next to its own."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.csi.kubelet_calls import KubeletVolume
from tests.integration.csi.plugin import NodePlugin
from tests.realparts.processes import free_port
from tests.realparts.s3server import S3Server

pytestmark = [pytest.mark.s3, pytest.mark.fuse]


def test_the_plugin_endpoint_aggregates_its_daemons_metrics(
    plugin_root: Path, s3_server: S3Server, bucket: str, fuse_available: None
) -> None:
    port = free_port()
    plugin = NodePlugin(plugin_root, extra_args=["--metrics-port", str(port)])
    try:
        plugin.start()
        volume = KubeletVolume.on_s3(plugin.kubelet_dir, s3_server, bucket, "metered")
        with plugin.channel() as channel:
            node = plugin.node(channel)
            volume.stage(node)
            target = volume.publish(node, "pod")
            (target / "f.bin").write_bytes(b"y" * 100_000)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=20) as response:
                text = response.read().decode()
            volume.unpublish(node, target)
            volume.unstage(node)
    finally:
        plugin.cleanup()

    samples = [s for family in text_string_to_metric_families(text) for s in family.samples]
    ours = {"volume": volume.volume_id}
    names = {s.name for s in samples if ours.items() <= s.labels.items()}
    assert "razorfs_node_daemon_up" in names and "razorfs_fuse_operation_duration_seconds_bucket" in names
    assert {"razorfs_dirty_bytes", "razorfs_cache_limit_bytes", "razorfs_node_daemon_restarts_total"} <= names
    up = [s for s in samples if s.name == "razorfs_node_daemon_up" and s.labels["volume"] == volume.volume_id]
    assert [s.value for s in up] == [1.0] and up[0].labels["node"]
    assert s3_server.secret_key not in text and s3_server.access_key not in text
