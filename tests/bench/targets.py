"""The issue's targets, as checks over a ResultSet.

A ratio target compares RazorFS with one peer through paired ratios of the metric itself
(RazorFS value / peer value), so for a time "2x faster" is a ratio <= 0.5; an absolute target
bounds RazorFS's own median. A cost target compares with the cheapest of several peers, run by
run (RazorFS's S3 requests / the fewest any of them sent)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from .metrics import REQUEST_GROUPS, request_metric
from .results import ResultSet
from .stats import Summary, ratio_summary, summarize

OURS = "razorfs"
# The peers of the cost targets: the other file systems. Raw boto3 is the floor the requests table
# shows (no file system semantics to keep), not a peer.
COST_PEERS: tuple[str, ...] = ("rclone", "s3fs")


@dataclass(frozen=True)
class Target:
    text: str
    metric: str
    peer: str | None  # None: an absolute bound on RazorFS's median
    op: Literal["<=", ">="]
    bound: float
    cheapest_of: tuple[str, ...] = ()  # set: the ratio is to the lowest of these peers' values

    @property
    def is_ratio(self) -> bool:
        return self.peer is not None or bool(self.cheapest_of)


@dataclass(frozen=True)
class TargetOutcome:
    target: Target
    measured: Summary | None

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        value = self.measured.median
        return value <= self.target.bound if self.target.op == "<=" else value >= self.target.bound


TARGETS: tuple[Target, ...] = (
    Target("cold sequential read >= 1.5x rclone", "seq_read_cold_mibps", "rclone", ">=", 1.5),
    Target("cold sequential read >= 0.8x raw boto3", "seq_read_cold_mibps", "boto3", ">=", 0.8),
    Target("warm read >= 0.9x local directory", "seq_read_warm_mibps", "local", ">=", 0.9),
    Target("write + fsync <= 1.2x raw boto3 multipart upload time", "seq_write_durable_s", "boto3", "<=", 1.2),
    Target("small files: close-returns time >= 2x faster than rclone", "small_files_close_s", "rclone", "<=", 0.5),
    Target("small files: close-returns time >= 10x faster than s3fs", "small_files_close_s", "s3fs", "<=", 0.1),
    Target("small files: until all in S3 at least as fast as rclone", "small_files_durable_s", "rclone", "<=", 1.0),
    Target("untar at least as fast as rclone", "untar_s", "rclone", "<=", 1.0),
    Target("untar read-back at least as fast as rclone", "untar_readback_s", "rclone", "<=", 1.0),
    Target("`ls -l` cold >= 2x faster than s3fs", "ls_cold_s", "s3fs", "<=", 0.5),
    Target("`ls -l` warm >= 5x faster than s3fs", "ls_warm_s", "s3fs", "<=", 0.2),
    # The same node mounting the volume again (same cache dir); s3fs keeps no stat cache on disk.
    Target("`ls -l` after a remount >= 5x faster than s3fs", "ls_remount_s", "s3fs", "<=", 0.2),
    Target("random 4 KiB reads, cold: at least s3fs's IOPS", "random_read_iops", "s3fs", ">=", 1.0),
    Target("random 4 KiB reads, warm: within 2x of local disk", "random_read_warm_iops", "local", ">=", 0.5),
    Target("random reads fetch <= 1/10 of the bytes s3fs fetches", "random_read_amplification", "s3fs", "<=", 0.1),
    Target("random reads fetch <= 4x the bytes read", "random_read_amplification", None, "<=", 4.0),
    Target("peak RSS while streaming <= 150 MiB", "stream_peak_rss_mib", None, "<=", 150.0),
    # "Flat as the file grows": we call it flat when the last three quarters add under 16 MiB.
    Target("RSS flat as the file grows (growth <= 16 MiB)", "stream_rss_growth_mib", None, "<=", 16.0),
    Target("RazorVolumes applied at once Ready within 60 s", "cp_ready_all_s", None, "<=", 60.0),
    # Each stage creates the volume's mount pod: the time a new pod's volume adds to its start.
    Target("CSI stage + publish with a new mount pod: p50 <= 3 s", "csi_stage_publish_p50_s", None, "<=", 3.0),
)

_COST_TEXT = {
    "seq_write": "write + fsync until in S3",
    "seq_read_cold": "cold sequential read",
    "seq_read_warm": "warm sequential re-read",
    "small_files": "small files until all in S3",
    "ls_cold": "`ls -l` cold",
    "ls_warm": "`ls -l` warm",
    "ls_remount": "`ls -l` after a remount",
    "random_read": "random reads",
    "untar": "untar + read-back until in S3",
}
TARGETS += tuple(
    Target(
        f"S3 requests, {_COST_TEXT[g.key]}: at most the cheapest peer's ({', '.join(COST_PEERS)})",
        request_metric(g.key, "total"),
        None,
        "<=",
        1.0,
        cheapest_of=COST_PEERS,
    )
    for g in REQUEST_GROUPS
)


def cost_ratios(ours: list[float], peers: list[list[float]]) -> list[float]:
    """Run by run: ours / the lowest peer value of that run (runs where ours or every peer is
    missing are skipped). Zero requests against zero is 1; any against zero is infinite."""
    ratios: list[float] = []
    for run, value in enumerate(ours):
        theirs = [series[run] for series in peers if run < len(series) and not math.isnan(series[run])]
        if math.isnan(value) or not theirs:
            continue
        cheapest = min(theirs)
        ratios.append(value / cheapest if cheapest else (1.0 if value == 0 else math.inf))
    return ratios


def evaluate(results: ResultSet, target: Target) -> TargetOutcome:
    ours = results.series(target.metric, OURS)
    if target.cheapest_of:
        peers = [results.series(target.metric, p) for p in target.cheapest_of]
        return TargetOutcome(target, summarize(cost_ratios(ours, peers)))
    if target.peer is None:
        return TargetOutcome(target, summarize(ours))
    return TargetOutcome(target, ratio_summary(ours, results.series(target.metric, target.peer)))


def evaluate_all(results: ResultSet) -> list[TargetOutcome]:
    return [evaluate(results, t) for t in TARGETS]
