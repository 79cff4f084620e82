"""The node plugin's per-volume series use the label its daemon gives its own series."""

from __future__ import annotations

from razorfs.csi.metrics import volume_label


def test_node_series_take_the_daemons_volume_name_else_the_csi_volume_id() -> None:
    argv = ["mount", "s3://b/p", "/mnt", "--volume-name", "team/data", "--node-name", "n1"]
    assert volume_label(argv, "razorfs-1234") == "team/data"
    assert volume_label(["mount", "s3://b/p", "/mnt"], "razorfs-1234") == "razorfs-1234"
    assert volume_label(["mount", "--volume-name"], "razorfs-1234") == "razorfs-1234"
