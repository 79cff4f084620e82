"""The metrics the suite reports: what each figure is called, its unit and which way is better;
and the groups of S3 requests counted at the proxy (`<group>_requests_<kind>`, one per kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Better = Literal["lower", "higher"]


@dataclass(frozen=True)
class Metric:
    key: str
    workload: str
    label: str
    unit: str
    better: Better


METRICS: tuple[Metric, ...] = (
    Metric("seq_write_durable_s", "seq_write", "write {seq} + fsync, until durable in S3", "s", "lower"),
    Metric("seq_read_cold_mibps", "seq_read", "cold sequential read of {seq}", "MiB/s", "higher"),
    Metric("seq_read_warm_mibps", "seq_read", "warm sequential re-read of {seq}", "MiB/s", "higher"),
    Metric("small_files_close_s", "small_files", "{files} x 4 KiB files: create/write/close", "s", "lower"),
    Metric("small_files_durable_s", "small_files", "{files} x 4 KiB files: until all in S3", "s", "lower"),
    Metric("ls_cold_s", "listing", "`ls -l` of {objects} objects, cold", "s", "lower"),
    Metric("ls_warm_s", "listing", "`ls -l` of {objects} objects, warm", "s", "lower"),
    Metric("ls_remount_s", "listing", "`ls -l` of {objects} objects, after a remount", "s", "lower"),
    Metric("random_read_iops", "random_read", "random 4 KiB reads across {seq} (cold)", "IOPS", "higher"),
    Metric(
        "random_read_warm_iops",
        "random_read",
        "random 4 KiB reads again, warm (page cache dropped: from each system's local cache)",
        "IOPS",
        "higher",
    ),
    Metric("random_read_amplification", "random_read", "S3 bytes fetched / bytes read", "x", "lower"),
    Metric("untar_s", "untar", "untar a source tree ({tree})", "s", "lower"),
    Metric("untar_readback_s", "untar", "read the untarred tree back", "s", "lower"),
    Metric("stream_peak_rss_mib", "rss", "peak RSS of the mount process, streaming {stream}", "MiB", "lower"),
    Metric("stream_rss_growth_mib", "rss", "RSS growth, 1/4 of {stream} written to fsync done", "MiB", "lower"),
    Metric("cp_ready_all_s", "control_plane", "{volumes} RazorVolumes applied at once, until all Ready", "s", "lower"),
    Metric("csi_stage_publish_p50_s", "control_plane", "CSI stage + publish, p50 of {stages}", "s", "lower"),
    Metric("csi_stage_publish_p99_s", "control_plane", "CSI stage + publish, p99 of {stages}", "s", "lower"),
)

METRICS_BY_KEY: dict[str, Metric] = {m.key: m for m in METRICS}
WORKLOADS: tuple[str, ...] = tuple(dict.fromkeys(m.workload for m in METRICS))


def metrics_of(workload: str) -> list[Metric]:
    return [m for m in METRICS if m.workload == workload]


@dataclass(frozen=True)
class RequestGroup:
    """A stretch of a workload whose S3 requests are counted at the proxy, in a counting run."""

    key: str
    workload: str
    label: str


REQUEST_GROUPS: tuple[RequestGroup, ...] = (
    RequestGroup("seq_write", "seq_write", "write {seq} + fsync, until durable in S3"),
    RequestGroup("seq_read_cold", "seq_read", "cold sequential read of {seq}"),
    RequestGroup("seq_read_warm", "seq_read", "warm sequential re-read of {seq}"),
    RequestGroup("small_files", "small_files", "{files} x 4 KiB files: mkdir, create/write/close, until all in S3"),
    RequestGroup("ls_cold", "listing", "`ls -l` of {objects} objects, cold"),
    RequestGroup("ls_warm", "listing", "`ls -l` of {objects} objects, warm"),
    RequestGroup("ls_remount", "listing", "`ls -l` of {objects} objects, after a remount"),
    RequestGroup("random_read", "random_read", "random 4 KiB reads across {seq} (cold), open included"),
    RequestGroup("untar", "untar", "untar {tree}, read it back, until all in S3"),
)
# The proxy's kinds (counting_proxy.KINDS) in lower case, and their sum.
REQUEST_KINDS: tuple[str, ...] = ("get", "put", "head", "list", "post", "delete", "other")
REQUEST_MARK = "_requests_"


def request_metric(group: str, kind: str) -> str:
    """`kind`: one of REQUEST_KINDS, or "total"."""
    return f"{group}{REQUEST_MARK}{kind}"


def request_figures(group: str, by_kind: dict[str, int]) -> dict[str, float]:
    """The figures of one group from the proxy's counts (keys as in counting_proxy.KINDS)."""
    figures = {request_metric(group, kind): float(by_kind.get(kind.upper(), 0)) for kind in REQUEST_KINDS}
    figures[request_metric(group, "total")] = float(sum(by_kind.values()))
    return figures
