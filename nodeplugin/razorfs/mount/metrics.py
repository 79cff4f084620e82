"""Optional Prometheus endpoint (`--metrics-port`): the daemon's stats as gauges and counters,
read at scrape time from the same numbers `razorfs stats` prints."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

_GAUGES = ("cached_bytes", "dirty_bytes", "uploading_bytes", "cache_limit_bytes", "files_cached", "dirty_files")
_COUNTERS = ("hits", "misses", "bytes_uploaded", "bytes_downloaded", "s3_requests", "s3_errors", "evicted_bytes")


class _StatsCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._stats()
        for name in _GAUGES:
            yield GaugeMetricFamily(f"razorfs_{name}", name.replace("_", " "), value=stats[name])
        for name in _COUNTERS:
            yield CounterMetricFamily(f"razorfs_{name}", name.replace("_", " "), value=stats[name])


class MetricsServer:
    def __init__(self, server: Any) -> None:
        self._server = server

    def shutdown(self) -> None:
        self._server.shutdown()


def serve_metrics(port: int, stats: Callable[[], dict[str, Any]]) -> MetricsServer:
    registry = CollectorRegistry()
    registry.register(_StatsCollector(stats))
    server, _thread = start_http_server(port, registry=registry)
    return MetricsServer(server)
