"""A mount daemon's Prometheus metrics: latency histograms of FUSE operations and S3 requests,
errors by kind, and the cache and upload figures `razorfs stats` prints, read at scrape time.

Every series carries the daemon's labels (volume, namespace, name, node: never a secret). The
registry is served by `--metrics-port` and, as text, by the control socket's `metrics` op, which
the node plugin aggregates into its own endpoint. `DAEMON_METRICS` is the one list of names:
docs/metrics.md is generated from it (`python -m razorfs.csi.metrics_doc`)."""

from __future__ import annotations

import errno
import functools
import inspect
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: fewer series, same meaning

DAEMON_LABELS = ("volume", "namespace", "name", "node")
# FUSE calls take microseconds from the page cache to seconds from S3; S3 requests milliseconds up.
FUSE_BUCKETS_S = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
S3_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (counters with _total)
    type: str  # counter, gauge, histogram
    help: str
    labels: tuple[str, ...] = ()  # besides DAEMON_LABELS


DAEMON_METRICS = (
    MetricSpec("razorfs_fuse_operation_duration_seconds", "histogram", "FUSE operation latency", ("operation",)),
    MetricSpec("razorfs_fuse_errors_total", "counter", "FUSE calls answered with an errno", ("operation", "errno")),
    MetricSpec("razorfs_s3_request_duration_seconds", "histogram", "S3 request latency", ("operation",)),
    MetricSpec("razorfs_s3_errors_total", "counter", "S3 requests that failed, by error kind", ("operation", "kind")),
    MetricSpec("razorfs_s3_requests_total", "counter", "S3 requests sent"),
    MetricSpec("razorfs_s3_uploaded_bytes_total", "counter", "Bytes sent to S3"),
    MetricSpec("razorfs_s3_downloaded_bytes_total", "counter", "Bytes received from S3"),
    MetricSpec("razorfs_s3_unreachable", "gauge", "1 while S3 could not be reached lately"),
    MetricSpec("razorfs_cache_hits_total", "counter", "Reads served entirely from the local cache"),
    MetricSpec("razorfs_cache_misses_total", "counter", "Reads that fetched from S3"),
    MetricSpec("razorfs_cache_evicted_bytes_total", "counter", "Clean bytes evicted from the cache"),
    MetricSpec("razorfs_cache_used_bytes", "gauge", "Bytes held in the local cache"),
    MetricSpec("razorfs_cache_limit_bytes", "gauge", "The cache's byte limit"),
    MetricSpec("razorfs_cache_files", "gauge", "Files with data in the cache"),
    MetricSpec("razorfs_dirty_bytes", "gauge", "Bytes written locally and not yet in S3"),
    MetricSpec("razorfs_dirty_files", "gauge", "Files with changes not yet in S3"),
    MetricSpec("razorfs_uploading_bytes", "gauge", "Bytes of uploads in flight"),
    MetricSpec("razorfs_upload_queue_files", "gauge", "Acknowledged files waiting for or in upload"),
    MetricSpec(
        "razorfs_oldest_dirty_age_seconds",
        "gauge",
        "Age of the oldest dirty file (as seen by the scrapes: resolution one scrape interval)",
    ),
    MetricSpec("razorfs_upload_failed_attempts", "gauge", "Consecutive failed upload attempts (0 once one succeeds)"),
    MetricSpec("razorfs_journal_bytes", "gauge", "Size of the SQLite journal with its WAL"),
    MetricSpec("razorfs_daemon_start_time_seconds", "gauge", "Unix time the mount daemon started"),
)
_SPECS = {spec.name: spec for spec in DAEMON_METRICS}


def volume_labels(volume: str, node: str) -> dict[str, str]:
    """The daemon's constant labels; "NAMESPACE/NAME" also fills namespace and name."""
    namespace, _, name = volume.rpartition("/") if volume.count("/") == 1 else ("", "", volume)
    return {"volume": volume, "namespace": namespace, "name": name, "node": node}


class DaemonMetrics:
    """The daemon's registry. `stats` is the daemon's stats() (what `razorfs stats` prints)."""

    def __init__(self, labels: dict[str, str], stats: Callable[[], dict[str, Any]], journal_path: Path) -> None:
        self.labels = labels
        self._inner = CollectorRegistry()
        spec = _SPECS["razorfs_fuse_operation_duration_seconds"]
        self.fuse_latency = Histogram(
            spec.name.removesuffix("_seconds"), spec.help, spec.labels, unit="seconds",
            registry=self._inner, buckets=FUSE_BUCKETS_S,
        )  # fmt: skip
        spec = _SPECS["razorfs_fuse_errors_total"]
        self.fuse_errors = Counter(spec.name, spec.help, spec.labels, registry=self._inner)
        spec = _SPECS["razorfs_s3_request_duration_seconds"]
        self.s3_latency = Histogram(
            spec.name.removesuffix("_seconds"), spec.help, spec.labels, unit="seconds",
            registry=self._inner, buckets=S3_BUCKETS_S,
        )  # fmt: skip
        spec = _SPECS["razorfs_s3_errors_total"]
        self.s3_errors = Counter(spec.name, spec.help, spec.labels, registry=self._inner)
        self._inner.register(_StatsCollector(stats, journal_path))
        self.registry = CollectorRegistry()
        self.registry.register(_WithLabels(self._inner, labels))

    def exposition(self) -> str:
        return generate_latest(self.registry).decode()

    def time_fuse_operations(self, ops: Any) -> None:
        """Wraps every FUSE handler `ops` defines (pyfuse3 looks them up on the instance)."""
        import pyfuse3

        for name in dir(pyfuse3.Operations):
            if name.startswith("_") or name in ("init", "stacktrace", "supports_dot_lookup", "enable_acl"):
                continue
            method = getattr(ops, name, None)
            if method is not None and inspect.iscoroutinefunction(method):
                setattr(ops, name, self._timed_fuse(name, method))

    def _timed_fuse(self, operation: str, method: Callable[..., Any]) -> Callable[..., Any]:
        import pyfuse3

        latency = self.fuse_latency.labels(operation)

        @functools.wraps(method)
        async def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            except pyfuse3.FUSEError as err:
                self.fuse_errors.labels(operation, errno.errorcode.get(err.errno, str(err.errno))).inc()
                raise
            finally:
                latency.observe(time.perf_counter() - started)

        return timed


class TimedStore:
    """An object store whose every request is timed into `razorfs_s3_request_duration_seconds`
    and whose failures count in `razorfs_s3_errors_total` by exception type. Generators (listing
    pages) are timed until exhausted."""

    def __init__(self, store: Any, metrics: DaemonMetrics) -> None:
        self.store = store
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr) or name.startswith("_") or name in ("replace_credentials", "retry_now"):
            return attr
        return functools.partial(self._call, name, attr)

    def _call(self, operation: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = method(*args, **kwargs)
        except Exception as err:
            self._observe(operation, started, err)
            raise
        if inspect.isgenerator(result):
            return self._timed_pages(operation, result, started)
        self._observe(operation, started, None)
        return result

    def _timed_pages(self, operation: str, pages: Iterator[Any], started: float) -> Iterator[Any]:
        try:
            yield from pages
        except Exception as err:
            self._observe(operation, started, err)
            raise
        self._observe(operation, started, None)

    def _observe(self, operation: str, started: float, err: Exception | None) -> None:
        self._metrics.s3_latency.labels(operation).observe(time.perf_counter() - started)
        if err is not None:
            self._metrics.s3_errors.labels(operation, type(err).__name__).inc()


class _WithLabels(Collector):
    """Everything `inner` collects, with the daemon's labels added to each sample."""

    def __init__(self, inner: CollectorRegistry, labels: dict[str, str]) -> None:
        self._inner = inner
        self._labels = labels

    def collect(self) -> Iterator[Metric]:
        for family in self._inner.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                labelled.add_sample(s.name, {**self._labels, **s.labels}, s.value, s.timestamp, s.exemplar)
            yield labelled


class _StatsCollector(Collector):
    _COUNTERS = {
        "razorfs_s3_requests_total": "s3_requests",
        "razorfs_s3_uploaded_bytes_total": "bytes_uploaded",
        "razorfs_s3_downloaded_bytes_total": "bytes_downloaded",
        "razorfs_cache_hits_total": "hits",
        "razorfs_cache_misses_total": "misses",
        "razorfs_cache_evicted_bytes_total": "evicted_bytes",
    }
    _GAUGES = {
        "razorfs_s3_unreachable": "s3_unreachable",
        "razorfs_cache_used_bytes": "cached_bytes",
        "razorfs_cache_limit_bytes": "cache_limit_bytes",
        "razorfs_cache_files": "files_cached",
        "razorfs_dirty_bytes": "dirty_bytes",
        "razorfs_dirty_files": "dirty_files",
        "razorfs_uploading_bytes": "uploading_bytes",
        "razorfs_upload_queue_files": "upload_queue_files",
        "razorfs_upload_failed_attempts": "upload_failed_attempts",
        "razorfs_oldest_dirty_age_seconds": "oldest_dirty_age_s",
    }

    def __init__(self, stats: Callable[[], dict[str, Any]], journal_path: Path) -> None:
        self._stats = stats
        self._journal_path = journal_path
        self._started = time.time()

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        for name, key in self._COUNTERS.items():
            yield CounterMetricFamily(name.removesuffix("_total"), _SPECS[name].help, value=float(stats[key]))
        for name, key in self._GAUGES.items():
            yield GaugeMetricFamily(name, _SPECS[name].help, value=float(stats[key]))
        journal = sum(_size(Path(f"{self._journal_path}{suffix}")) for suffix in ("", "-wal"))
        yield GaugeMetricFamily("razorfs_journal_bytes", _SPECS["razorfs_journal_bytes"].help, value=journal)
        start = _SPECS["razorfs_daemon_start_time_seconds"]
        yield GaugeMetricFamily(start.name, start.help, value=self._started)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class MetricsServer:
    def __init__(self, server: Any) -> None:
        self._server = server

    def shutdown(self) -> None:
        self._server.shutdown()


def serve_metrics(port: int, metrics: DaemonMetrics) -> MetricsServer:
    server, _thread = start_http_server(port, registry=metrics.registry)
    return MetricsServer(server)
