"""The metric lists in the code are what the daemon and the plugin expose, follow Prometheus'
naming conventions, and docs/metrics.md is generated from them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from razorfs.csi import metrics_doc
from razorfs.csi.metrics import NODE_METRICS
from razorfs.mount.metrics import DAEMON_LABELS, DAEMON_METRICS, DaemonMetrics, volume_labels

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
STATS: dict[str, Any] = {
    "s3_requests": 3, "bytes_uploaded": 10, "bytes_downloaded": 20, "hits": 5, "misses": 1, "evicted_bytes": 0,
    "s3_unreachable": 0, "cached_bytes": 100, "cache_limit_bytes": 1000, "files_cached": 2, "dirty_bytes": 7,
    "dirty_files": 1, "uploading_bytes": 0, "upload_queue_files": 1, "upload_failed_attempts": 0,
    "oldest_dirty_age_s": 1.5,
}  # fmt: skip


def _exposed(tmp_path: Path) -> dict[str, Any]:
    metrics = DaemonMetrics(volume_labels("team-a/data", "node-1"), lambda: STATS, tmp_path / "journal.sqlite")
    metrics.fuse_latency.labels("read").observe(0.002)
    metrics.fuse_errors.labels("lookup", "ENOENT").inc()
    metrics.s3_latency.labels("get_range").observe(0.05)
    metrics.s3_errors.labels("put_file", "StoreUnavailable").inc()
    return {family.name: family for family in text_string_to_metric_families(metrics.exposition())}


def test_docs_metrics_md_is_generated_from_the_code() -> None:
    assert DOC.read_text() == metrics_doc.render(), "run: python -m razorfs.csi.metrics_doc > docs/metrics.md"


def test_the_daemon_exposes_exactly_the_listed_metrics_with_its_labels(tmp_path: Path) -> None:
    families = _exposed(tmp_path)
    listed = {spec.name.removesuffix("_total") if spec.type == "counter" else spec.name for spec in DAEMON_METRICS}
    assert set(families) == listed
    for family in families.values():
        for sample in family.samples:
            assert {k: sample.labels[k] for k in DAEMON_LABELS} == {
                "volume": "team-a/data", "namespace": "team-a", "name": "data", "node": "node-1",
            }  # fmt: skip


def test_names_follow_prometheus_conventions() -> None:
    for spec in (*DAEMON_METRICS, *NODE_METRICS):
        assert spec.name.startswith("razorfs_") and spec.name == spec.name.lower()
        assert spec.name.endswith("_total") == (spec.type == "counter"), spec.name
        if spec.type == "histogram":
            assert spec.name.endswith("_seconds"), spec.name
        assert not any(word in spec.name for word in ("_ms", "_kb", "_mb", "millis")), spec.name
        assert not {"secret", "access_key", "token", "bucket"} & set(spec.labels)


def test_a_volume_name_without_namespace_is_the_name_label() -> None:
    assert volume_labels("razorfs-1234", "n") == {"volume": "razorfs-1234", "namespace": "", "name": "razorfs-1234",
                                                   "node": "n"}  # fmt: skip
