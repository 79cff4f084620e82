"""A real mount's metrics (the control socket's `metrics` op, what the node plugin aggregates):
FUSE and S3 latency histograms by operation, errors by kind, the dirty backlog, all labelled
with the daemon's volume and node."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from razorfs.mount.control import CONTROL_SOCKET_NAME, request_final
from tests.integration.fs.conftest import MountedVolume, MountFactory


def _samples(vol: MountedVolume) -> list[Any]:
    reply = request_final(vol.cache_dir / CONTROL_SOCKET_NAME, {"op": "metrics"}, timeout_s=10)
    assert reply["ok"], reply
    return [s for family in text_string_to_metric_families(reply["metrics"]) for s in family.samples]


def _value(samples: list[Any], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())


def test_metrics_time_fuse_and_s3_operations_and_count_errors(razorfs_mount: MountFactory) -> None:
    vol = razorfs_mount(extra=("--volume-name", "team-a/data", "--node-name", "node-1"))
    (vol.mountpoint / "f.bin").write_bytes(b"x" * 200_000)
    assert not (vol.mountpoint / "missing").exists()
    vol.flush()
    assert (vol.mountpoint / "f.bin").read_bytes()[:1] == b"x"

    samples = _samples(vol)

    assert _value(samples, "razorfs_fuse_operation_duration_seconds_count", operation="write") > 0
    assert _value(samples, "razorfs_fuse_operation_duration_seconds_count", operation="lookup") > 0
    assert _value(samples, "razorfs_fuse_errors_total", operation="lookup", errno="ENOENT") > 0
    s3_ops = {s.labels["operation"] for s in samples if s.name == "razorfs_s3_request_duration_seconds_count"}
    assert {"head", "list_pages"} & s3_ops and {"put_file", "put_bytes"} & s3_ops, s3_ops
    assert _value(samples, "razorfs_s3_uploaded_bytes_total") >= 200_000
    assert _value(samples, "razorfs_dirty_bytes") == 0 and _value(samples, "razorfs_oldest_dirty_age_seconds") == 0
    assert _value(samples, "razorfs_journal_bytes") > 0
    assert all(
        (s.labels["volume"], s.labels["namespace"], s.labels["name"], s.labels["node"])
        == ("team-a/data", "team-a", "data", "node-1")
        for s in samples
    )
